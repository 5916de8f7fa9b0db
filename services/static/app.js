// Fashion Studio's page: one more client of the public JSON API, served by the gateway at /ui/.
// Views are discovered from /openapi.json at load: a section whose endpoint the gateway does not
// serve is removed. With API keys on, the key is asked for on the first 401 and kept in
// sessionStorage only (gone when the tab closes).
"use strict";

const API = new URL("..", location.href); // the gateway's root, also behind a path prefix
const KEY_NAME = "fashion-studio-api-key";
const JOB_NAME = "fashion-studio-last-job";
const SESSION_NAME = "fashion-studio-session";
const GALLERY_PAGE = 24;
const $ = (selector, root = document) => root.querySelector(selector);

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || body.limit || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// --- calls to the API ------------------------------------------------------------------------------

let keyWaiters = [];

function askForKey(message) {
  const form = $("#key-form");
  form.hidden = false;
  $("#key-message").textContent = message;
  $("#key-input").focus();
  return new Promise((resolve) => keyWaiters.push(resolve));
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("#key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_NAME, key);
  $("#key-form").hidden = true;
  $("#key-input").value = "";
  const waiters = keyWaiters;
  keyWaiters = [];
  waiters.forEach((resolve) => resolve());
});

async function request(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY_NAME);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(new URL(path, API), { ...options, headers });
    if (response.ok) return response;
    const body = await response.json().catch(() => ({ message: `HTTP ${response.status} ${response.statusText}` }));
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(KEY_NAME);
      await askForKey(body.limit || body.message || "this gateway needs an API key");
      continue;
    }
    throw new ApiError(response.status, body);
  }
}

async function getJSON(path) {
  return (await request(path)).json();
}

async function postJSON(path, body) {
  const response = await request(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return response.json();
}

const blobUrls = new Map();

// Images come through fetch, not <img src>, so that the API key goes with them.
async function blobUrl(path) {
  if (!blobUrls.has(path)) {
    const blob = await (await request(path)).blob();
    blobUrls.set(path, URL.createObjectURL(blob));
  }
  return blobUrls.get(path);
}

const imageUrl = (id) => blobUrl(`images/${encodeURIComponent(id)}`);

// A stored image's id is its record key: the file name of the URL the API answers with.
function imageIdOf(url) {
  return url.split("/").pop().replace(/\.png$/, "");
}

async function download(path, filename) {
  const blob = await (await request(path)).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// --- showing work and errors -----------------------------------------------------------------------

function showError(element, error) {
  element.hidden = false;
  element.replaceChildren();
  if (!(error instanceof ApiError)) {
    element.textContent = String(error.message || error);
    return;
  }
  const body = error.body;
  const head = document.createElement("strong");
  head.textContent = body.field ? `${body.field}` : `${error.status} ${body.error || "error"}`;
  element.append(head);
  if (body.field && body.value !== undefined && body.value !== null) {
    element.append(` = ${typeof body.value === "string" ? body.value : JSON.stringify(body.value)}`);
  }
  if (body.limit) element.append(`: ${body.limit}`);
  if (body.message && body.message !== body.limit) {
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = body.message;
    element.append(detail);
  }
}

// Disables the form's button and counts seconds until the work settles; errors land in its alert.
async function busy(form, label, work) {
  const button = $("button[type=submit]", form);
  const status = $(".status", form);
  const alert = $(".error", form);
  alert.hidden = true;
  button.disabled = true;
  const started = performance.now();
  const tick = () => { status.textContent = `${label}… ${((performance.now() - started) / 1000).toFixed(0)} s`; };
  tick();
  const timer = setInterval(tick, 500);
  status.classList.add("working");
  try {
    await work();
    status.textContent = `done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  } catch (error) {
    status.textContent = "";
    showError(alert, error);
  } finally {
    clearInterval(timer);
    status.classList.remove("working");
    button.disabled = false;
  }
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== undefined && child !== null));
  return node;
}

// A card of an image whose URL `source` resolves to (a blob: URL), with a caption of lines.
function figureCard(source, lines, name) {
  const card = $("#image-card").content.firstElementChild.cloneNode(true);
  const img = $("img", card);
  img.alt = lines[0] || name;
  Promise.resolve(source).then((url) => { img.src = url; }, () => { img.alt = `image ${name} could not be loaded`; });
  $("figcaption", card).append(...lines.filter((line) => line).map((line) => element("span", {}, line)));
  return card;
}

function imageCard(id, lines) {
  const card = figureCard(imageUrl(id), lines, id);
  card.dataset.imageId = id;
  return card;
}

const score = (value) => (typeof value === "number" ? value.toFixed(2) : "–");

// A stored image taken to another view: its id in that view's form, in place of any other source.
const IMAGE_USES = [["edit", "Edit"], ["segment", "Masks"], ["tryon", "Try-on"], ["recommend", "Similar"], ["popularity", "Popularity"]];

function useImage(view, id) {
  const form = $(`#${view}-form`);
  for (const name of ["file", "text"]) if (form.elements[name]) form.elements[name].value = "";
  form.elements.image_id.value = id;
  form.elements.image_id.dispatchEvent(new Event("change"));
  show(view);
  form.scrollIntoView({ block: "start" });
}

// Buttons that take a stored image to the views that take one (those the gateway serves).
function imageActions(id) {
  const buttons = IMAGE_USES.filter(([view]) => $(`#${view}-form`)).map(([view, label]) => {
    const button = element("button", { type: "button", "data-use": view }, label);
    button.addEventListener("click", () => useImage(view, id));
    return button;
  });
  return buttons.length ? element("div", { class: "uses" }, ...buttons) : null;
}

function withActions(card, id) {
  const actions = imageActions(id);
  if (actions) card.append(actions);
  return card;
}

// Fields of a form that are alternatives (an image file, a stored image, words): filling one empties
// the others, so that a request names one source; the API still says so when none or two are sent.
function alternatives(form, names) {
  const fields = names.map((name) => form.elements[name]).filter(Boolean);
  for (const field of fields) {
    field.addEventListener(field.type === "file" ? "change" : "input", () => {
      if (field.type === "file" ? !field.files.length : !field.value) return;
      for (const other of fields) if (other !== field) other.value = "";
    });
  }
}

async function imageOf(form) {
  const file = form.elements.file.files[0];
  if (file) return { image: await fileAsBase64(file) };
  const id = form.elements.image_id.value.trim();
  return id ? { image_id: id } : {};
}

// Number fields that are filled in, as numbers; empty ones are left to the API's defaults.
function numbers(form, names) {
  const body = {};
  for (const name of names) {
    const raw = form.elements[name]?.value.trim();
    if (raw) body[name] = Number(raw);
  }
  return body;
}

// --- the schema: which views exist, and the limits and choices of their fields ---------------------

let schema = { paths: {}, components: { schemas: {} } };

function resolve(node) {
  while (node && node.$ref) node = node.$ref.split("/").slice(1).reduce((at, part) => at[part], schema);
  return node || {};
}

function requestSchema(path) {
  const content = schema.paths[path]?.post?.requestBody?.content || {};
  const media = content["application/json"] || Object.values(content)[0];
  return resolve(media?.schema);
}

// The choices of a field: an enum directly, behind a $ref, or in one branch of anyOf (an optional field).
function choicesOf(property) {
  property = resolve(property);
  if (property.enum) return property.enum;
  if (property.items) return choicesOf(property.items); // a list of choices (one picked here)
  for (const branch of property.anyOf || property.oneOf || property.allOf || []) {
    const found = choicesOf(branch);
    if (found) return found;
  }
  return null;
}

function applyDefaults(form, properties) {
  for (const [name, property] of Object.entries(properties)) {
    const field = form.elements[name];
    if (!field || field.type === "file") continue;
    const resolved = resolve(property);
    if (resolved.default !== undefined && resolved.default !== null && !field.value) field.value = resolved.default;
    for (const [attribute, key] of [["min", "minimum"], ["max", "maximum"]]) {
      if (resolved[key] !== undefined) field.setAttribute(attribute, resolved[key]);
    }
  }
}

function discover() {
  const tabs = $("#tabs");
  for (const node of document.querySelectorAll("[data-requires]")) {
    if (!node.dataset.requires.trim().split(/\s+/).every((path) => path in schema.paths)) node.remove();
  }
  for (const section of document.querySelectorAll("section[data-view]")) {
    tabs.append(element("button", { type: "button", "data-view": section.dataset.view }, section.dataset.label));
  }
  tabs.addEventListener("click", (event) => {
    if (event.target.dataset.view) show(event.target.dataset.view);
  });
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
}

const VIEW_OPENERS = {};

function show(view) {
  const sections = [...document.querySelectorAll("section[data-view]")];
  if (!sections.some((s) => s.dataset.view === view)) view = sections[0]?.dataset.view;
  for (const section of sections) section.hidden = section.dataset.view !== view;
  for (const tab of document.querySelectorAll("#tabs button")) tab.setAttribute("aria-current", String(tab.dataset.view === view));
  if (location.hash.slice(1) !== view) history.replaceState(null, "", `#${view}`);
  VIEW_OPENERS[view]?.();
}

// --- Generate --------------------------------------------------------------------------------------

function setUpGenerate() {
  const form = $("#generate-form");
  if (!form) return;
  const properties = requestSchema("/generate").properties || {};
  applyDefaults(form, properties);
  const adapters = properties.lora ? (choicesOf(properties.lora) || []).filter((a) => a !== null) : [];
  const adapterList = resolve(properties.lora).type === "array";
  if (adapters.length) {
    const select = form.elements.lora;
    select.append(element("option", { value: "" }, "none"), ...adapters.map((a) => element("option", { value: a }, a)));
    $("#lora-field").hidden = false;
  }
  if (properties.rank_by_popularity) $("#rank-field").hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { prompt: form.elements.prompt.value };
    for (const name of ["num_images", "seed", "width", "height", "steps"]) {
      const raw = form.elements[name].value.trim();
      if (raw !== "") body[name] = Number(raw);
    }
    if (adapters.length && form.elements.lora.value) body.lora = adapterList ? [form.elements.lora.value] : form.elements.lora.value;
    if (properties.rank_by_popularity && form.elements.rank_by_popularity.checked) body.rank_by_popularity = true;
    busy(form, "Generating", async () => {
      const answer = await postJSON("generate", body);
      const results = $("#generate-results");
      results.replaceChildren(...answer.images.map((image) => {
        const id = image.id || imageIdOf(image.url);
        return withActions(imageCard(id, [`CLIP ${score(image.clip_score)}`, `seed ${image.seed}`, `${image.width}×${image.height}`]), id);
      }));
      if (answer.blocked) results.append(element("p", { class: "hint" }, `${answer.blocked} image(s) failed the safety check and were not stored.`));
    });
  });
}

// --- Model shot: a person wearing a described outfit ------------------------------------------------

function setUpModelShot() {
  const form = $("#model-shot-form");
  if (!form) return;
  applyDefaults(form, requestSchema("/model_shot").properties || {});
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { top: form.elements.top.value, body: form.elements.body.value };
    if (form.elements.bottom.value.trim()) body.bottom = form.elements.bottom.value;
    for (const name of ["num_images", "seed", "steps"]) {
      const raw = form.elements[name].value.trim();
      if (raw !== "") body[name] = Number(raw);
    }
    busy(form, "Drawing", async () => {
      const answer = await postJSON("model_shot", body);
      const prompt = $("#model-shot-prompt");
      prompt.textContent = `Prompt: ${answer.prompt}`;
      prompt.hidden = false;
      $("#model-shot-results").replaceChildren(...answer.images.map((image) => {
        const id = image.id || imageIdOf(image.url);
        return withActions(imageCard(id, [`CLIP ${score(image.clip_score)}`, `seed ${image.seed}`]), id);
      }));
    });
  });
}

// --- Catalog: one article, and spreadsheet jobs ----------------------------------------------------

function attributeTable(attributes) {
  const rows = Object.entries(attributes)
    .filter(([, value]) => value !== null && !(Array.isArray(value) && value.length === 0))
    .map(([name, value]) => element("tr", {}, element("th", {}, name.replace(/_/g, " ")), element("td", {}, Array.isArray(value) ? value.join(", ") : String(value))));
  return element("table", { class: "attributes" }, element("tbody", {}, ...rows));
}

function attemptsTable(attempts, best) {
  const rows = attempts.map((a) => element("tr", a.seed === best ? { class: "best" } : {},
    element("td", {}, String(a.attempt)), element("td", {}, String(a.seed)), element("td", {}, score(a.clip_score)), element("td", {}, `${a.seconds.toFixed(2)} s`)));
  return element("table", { class: "attempts" },
    element("thead", {}, element("tr", {}, ...["attempt", "seed", "CLIP", "time"].map((h) => element("th", {}, h)))),
    element("tbody", {}, ...rows));
}

function renderCatalogResult(result) {
  const id = imageIdOf(result.url);
  const gate = element("span", { class: result.passed ? "badge pass" : "badge fail" }, result.passed ? "passed the gate" : "under the threshold");
  const facts = element("div", { class: "facts" },
    element("h3", {}, `${result.article_id} `, gate, result.skipped ? element("span", { class: "badge" }, "already stored") : null),
    element("p", {}, element("strong", {}, "Translation: "), element("span", { class: "translation" }, result.translation)),
    attributeTable(result.attributes),
    element("p", {}, element("strong", {}, "Generation prompt: "), result.generation_prompt),
    element("p", {}, element("strong", {}, "CLIP prompt: "), result.clip_prompt),
    element("h4", {}, "Gate attempts"),
    attemptsTable(result.attempts, result.seed));
  $("#catalog-result").replaceChildren(element("div", { class: "catalog-result" }, imageCard(id, [`CLIP ${score(result.clip_score)}`, `seed ${result.seed}`]), facts));
}

function setUpCatalog() {
  const form = $("#catalog-form");
  if (!form) return;
  applyDefaults(form, requestSchema("/catalog").properties || {});
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { article_id: form.elements.article_id.value, description: form.elements.description.value, language: form.elements.language.value };
    busy(form, "Translating, generating, scoring", async () => renderCatalogResult(await postJSON("catalog", body)));
  });

  const jobForm = $("#job-form");
  if (!jobForm) return;
  jobForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = jobForm.elements.file.files[0];
    busy(jobForm, "Uploading", async () => {
      if (!file) throw new Error("choose a .csv or .xlsx file first");
      const data = new FormData();
      data.append("file", file);
      const job = await (await request("catalog/jobs", { method: "POST", body: data })).json();
      sessionStorage.setItem(JOB_NAME, job.id);
      watchJob(job.id);
    });
  });
  const last = sessionStorage.getItem(JOB_NAME);
  if (last) watchJob(last);
}

let watching = null;

async function watchJob(id) {
  watching = id;
  const panel = $("#job-progress");
  panel.hidden = false;
  $("#job-download").hidden = true;
  $("#job-download").onclick = () => download(`catalog/jobs/${id}/results`, `catalog-job-${id}.csv`).catch((error) => showError($("#job-form .error"), error));
  while (watching === id) {
    let job;
    try {
      job = await getJSON(`catalog/jobs/${id}`);
    } catch (error) {
      showError($("#job-form .error"), error);
      if (error instanceof ApiError && error.status === 404) {
        sessionStorage.removeItem(JOB_NAME);
        panel.hidden = true;
        return;
      }
      await new Promise((r) => setTimeout(r, 3000));
      continue;
    }
    renderJob(job);
    if (job.status === "done") return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function renderJob(job) {
  const p = job.progress;
  $("#job-progress").dataset.status = job.status;
  $("#job-bar").max = p.total;
  $("#job-bar").value = p.done + p.failed;
  $("#job-counts").textContent = `${job.filename}: ${p.done + p.failed} of ${p.total} (${p.done} done, ${p.failed} failed, ${p.passed} passed the gate) — ${job.status}`;
  $("#job-download").hidden = job.status !== "done";
  $("#job-rows tbody").replaceChildren(...job.rows.map((row) => element("tr", { class: row.status },
    element("td", {}, String(row.index)),
    element("td", {}, row.article_id),
    element("td", {}, row.status + (row.skipped ? " (stored before)" : "")),
    element("td", {}, score(row.clip_score)),
    element("td", {}, row.passed === null ? "" : row.passed ? "passed" : "under"),
    element("td", {}, row.image_id ? thumbnail(row.image_id) : ""),
    element("td", { class: "error-text" }, row.error || ""))));
}

function thumbnail(id) {
  const img = element("img", { class: "thumb", alt: id });
  imageUrl(id).then((url) => { img.src = url; }, () => {});
  return img;
}

// --- Gallery ---------------------------------------------------------------------------------------

let galleryOffset = 0;

async function loadGallery() {
  const alert = $("#gallery-error");
  alert.hidden = true;
  try {
    const page = await getJSON(`images?limit=${GALLERY_PAGE}&offset=${galleryOffset}`);
    const items = page.images.map((record) => {
      const meta = record.metadata;
      const gate = meta.passed === undefined ? "" : meta.passed ? " · passed" : " · under the threshold";
      const lines = [
        meta.edited_description || meta.original_description || meta.generation_prompt || record.id,
        meta.instruction ? `edited${meta.source_image_id ? ` from ${meta.source_image_id}` : ""}: “${meta.instruction}”` : "",
        `CLIP ${score(meta.clip_score)} · seed ${meta.seed ?? "–"}${gate}`,
        record.created_at ? new Date(record.created_at).toLocaleString() : "",
      ];
      const card = imageCard(record.id, lines);
      card.append(element("details", {}, element("summary", {}, "metadata"), element("pre", {}, JSON.stringify(meta, null, 1))));
      return withActions(card, record.id);
    });
    $("#gallery-items").replaceChildren(...items);
    if (!items.length) $("#gallery-items").append(element("p", { class: "hint" }, "No stored images yet: generate some."));
    const last = Math.min(galleryOffset + page.images.length, page.total);
    $("#gallery-page").textContent = page.total ? `${galleryOffset + 1}–${last} of ${page.total}` : "";
    $("#gallery-prev").disabled = galleryOffset === 0;
    $("#gallery-next").disabled = last >= page.total;
  } catch (error) {
    showError(alert, error);
  }
}

function setUpGallery() {
  if (!$("#view-gallery")) return;
  VIEW_OPENERS.gallery = loadGallery;
  $("#gallery-refresh").addEventListener("click", loadGallery);
  $("#gallery-prev").addEventListener("click", () => { galleryOffset = Math.max(0, galleryOffset - GALLERY_PAGE); loadGallery(); });
  $("#gallery-next").addEventListener("click", () => { galleryOffset += GALLERY_PAGE; loadGallery(); });
}

// --- Popularity ------------------------------------------------------------------------------------

function fileAsBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function setUpPopularity() {
  const form = $("#popularity-form");
  if (!form) return;
  const properties = requestSchema("/popularity").properties || {};
  for (const [name, list] of [["type", "#popularity-types"], ["colour", "#popularity-colours"], ["pattern", "#popularity-patterns"]]) {
    if (!(name in properties)) form.elements[name].closest("label").remove();
    else $(list).append(...(choicesOf(properties[name]) || []).filter((c) => c !== null).map((c) => element("option", { value: c })));
  }
  if (!("price" in properties)) form.elements.price.closest("label").remove();
  alternatives(form, ["file", "image_id"]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, "Predicting", async () => {
      const body = await imageOf(form);
      for (const name of ["type", "colour", "pattern"]) {
        if (form.elements[name]?.value) body[name] = form.elements[name].value;
      }
      if (form.elements.price?.value) body.price = Number(form.elements.price.value);
      const answer = await postJSON("popularity", body);
      $("#popularity-result").replaceChildren(element("p", { class: "big" },
        `score ${answer.score.toFixed(3)}`, element("span", { class: "hint" }, ` · ${answer.percentile.toFixed(0)}th percentile of the catalog`)));
    });
  });
}

// --- Edit ------------------------------------------------------------------------------------------

// The image an edit starts from, as chosen in the form: a file's own pixels, or a stored image.
function editSource(form) {
  const file = form.elements.file.files[0];
  if (file) return figureCard(URL.createObjectURL(file), [file.name, "uploaded"], file.name);
  const id = form.elements.image_id.value.trim();
  return id ? imageCard(id, [id, "stored image"]) : null;
}

function showEditSource(form) {
  const source = editSource(form);
  $("#edit-result").hidden = !source;
  $("#edit-source").replaceChildren(element("h3", {}, "Source"), source || "");
  $("#edit-output").replaceChildren(element("h3", {}, "Edited"), element("p", { class: "hint" }, "The edit appears here."));
}

function renderEdit(source, answer) {
  $("#edit-result").hidden = false;
  $("#edit-source").replaceChildren(element("h3", {}, "Source"), source);
  const card = imageCard(answer.id, [
    `CLIP ${score(answer.clip_score)}`,
    `against “${answer.edited_description}”`,
    `seed ${answer.seed} · ${answer.width}×${answer.height}`,
  ]);
  $("#edit-output").replaceChildren(element("h3", {}, "Edited: ", element("q", {}, answer.instruction)), withActions(card, answer.id));
}

function setUpEdit() {
  const form = $("#edit-form");
  if (!form) return;
  applyDefaults(form, requestSchema("/edit").properties || {});
  alternatives(form, ["file", "image_id"]);
  form.elements.file.addEventListener("change", () => showEditSource(form));
  form.elements.image_id.addEventListener("change", () => showEditSource(form));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, "Editing", async () => {
      const source = editSource(form);
      const body = { ...(await imageOf(form)), instruction: form.elements.instruction.value };
      Object.assign(body, numbers(form, ["seed", "steps", "guidance", "image_guidance"]));
      const answer = await postJSON("edit", body);
      renderEdit(source, answer); // the API answers 422 when there is none
    });
  });
}

// --- Masks -----------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
const STAGE_PX = 448; // the longer side of the shown image: a 64 px image, seven times enlarged
const MARKER_PX = 7; // a clicked point's radius on screen
const MASK_COLOURS = [[0, 170, 255], [255, 120, 0], [140, 210, 0]]; // best, second, third: no garment's colours
const CATEGORY_WORDS = { upper: "Upper garment", lower: "Lower garment", full: "All clothing" };

// An image to click points on (Masks, Try-on): its URL in this page, its size in pixels and the points
// clicked on it, shown enlarged in #<prefix>-stage with its points listed in #<prefix>-points. `cleared`
// runs when another image is chosen (with whether there is one), `clicked` after each new point.
function pointStage(prefix, form, { cleared = () => {}, clicked = () => {}, empty = "No points yet: click the image." } = {}) {
  return { prefix, form, cleared, clicked, empty, url: null, file: false, name: "", width: 0, height: 0, scale: 1, points: [], load: 0 };
}

let masking = null; // the Masks view's image and points

function svgElement(tag, attributes = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// An image with layers over it (masks, points), all drawn in the image's own pixels.
function layers(url, width, height) {
  const stack = element("div", { class: "layers" });
  stack.style.aspectRatio = `${width} / ${height}`;
  if (url) stack.append(element("img", { src: url, alt: "" }));
  return stack;
}

function markers(points, width, height, radius) {
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "markers" });
  svg.append(...points.map((p) => svgElement("circle", { cx: p.x, cy: p.y, r: radius, class: p.label ? "point on" : "point off" })));
  return svg;
}

// A one-channel mask PNG (255 inside) as a canvas at the image's size: inside in `colour`, half
// transparent, with an opaque edge; outside transparent.
async function maskCanvas(pngB64, colour) {
  const bytes = Uint8Array.from(atob(pngB64), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
  const { width, height } = bitmap;
  const canvas = element("canvas", { width, height, class: "mask" });
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const pixels = context.getImageData(0, 0, width, height);
  const data = pixels.data;
  const inside = new Uint8Array(width * height);
  for (let i = 0; i < inside.length; i++) inside[i] = data[4 * i] > 127 ? 1 : 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const edge = inside[i] && (x === 0 || y === 0 || x === width - 1 || y === height - 1
        || !inside[i - 1] || !inside[i + 1] || !inside[i - width] || !inside[i + width]);
      [data[4 * i], data[4 * i + 1], data[4 * i + 2]] = colour;
      data[4 * i + 3] = inside[i] ? (edge ? 255 : 130) : 0;
    }
  }
  context.putImageData(pixels, 0, 0);
  return canvas;
}

function maskBlobUrl(pngB64) {
  const bytes = Uint8Array.from(atob(pngB64), (c) => c.charCodeAt(0));
  return URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
}

function imageSize(url) {
  const img = new Image();
  img.src = url;
  return img.decode().then(() => [img.naturalWidth, img.naturalHeight]);
}

// The image chosen in the stage's form (`file` or `image_id`), shown enlarged; a new image starts
// without points or masks.
async function loadStageImage(stage) {
  const { prefix, form } = stage;
  const load = ++stage.load;
  if (stage.file) URL.revokeObjectURL(stage.url); // an upload's own URL; stored images stay cached
  Object.assign(stage, { url: null, file: false, points: [] });
  $(`#${prefix}-image-error`).hidden = true;
  $(`#${prefix}-stage`).replaceChildren();
  const file = form.elements.file.files[0];
  const id = form.elements.image_id.value.trim();
  stage.cleared(Boolean(file || id));
  renderPoints(stage);
  if (!file && !id) return;
  try {
    const url = file ? URL.createObjectURL(file) : await imageUrl(id);
    const [width, height] = await imageSize(url).catch(() => { throw new Error(`${file ? file.name : id} could not be read as an image`); });
    if (load !== stage.load) return;
    Object.assign(stage, { url, file: Boolean(file), name: file ? file.name : id, width, height });
    renderStage(stage);
  } catch (error) {
    if (load === stage.load) showError($(`#${prefix}-image-error`), error);
  }
}

function renderStage(stage) {
  const { url, width, height, form } = stage;
  const stack = layers(url, width, height);
  stage.scale = Math.min(STAGE_PX / width, STAGE_PX / height);
  stack.style.width = `${Math.round(width * stage.scale)}px`;
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", class: "markers", role: "img", "aria-label": "click to add a point" });
  svg.addEventListener("click", (event) => {
    const box = svg.getBoundingClientRect();
    // The clicked pixel's centre, in the image's pixels.
    const pixel = (offset, size, extent) => Math.min(size - 1, Math.max(0, Math.floor((offset * size) / extent))) + 0.5;
    const background = form.elements.background.checked !== event.shiftKey;
    stage.points.push({ x: pixel(event.clientX - box.left, width, box.width), y: pixel(event.clientY - box.top, height, box.height), label: background ? 0 : 1 });
    stage.clicked();
    renderPoints(stage);
  });
  stack.append(svg);
  $(`#${stage.prefix}-stage`).replaceChildren(stack, element("p", { class: "hint" }, `${stage.name} · ${width}×${height}`));
  renderPoints(stage);
}

function renderPoints(stage) {
  const svg = $(`#${stage.prefix}-stage svg.markers`);
  if (svg) {
    svg.replaceChildren(...markers(stage.points, stage.width, stage.height, MARKER_PX / stage.scale).children);
  }
  const list = $(`#${stage.prefix}-points`);
  list.replaceChildren(...stage.points.map((p, index) => {
    const remove = element("button", { type: "button", title: "remove this point", "aria-label": `remove the point at (${p.x}, ${p.y})` }, "×");
    remove.addEventListener("click", () => { stage.points.splice(index, 1); renderPoints(stage); });
    return element("li", { class: p.label ? "on" : "off", "data-x": String(p.x), "data-y": String(p.y), "data-label": String(p.label) },
      `${p.label ? "on the garment" : "background"} (${p.x}, ${p.y})`, remove);
  }));
  if (!stage.points.length && stage.url) list.append(element("li", { class: "hint" }, stage.empty));
}

// A mask over the stage's image (the last one used), under the points; none for `canvas` null.
function showStageMask(stage, canvas) {
  const stack = $(`#${stage.prefix}-stage .layers`);
  if (!stack) return;
  $("canvas.mask", stack)?.remove();
  if (canvas) stack.insertBefore(canvas, $("svg", stack));
}

async function renderMasks(answer, shown) {
  const area = answer.width * answer.height;
  const cards = await Promise.all(answer.masks.map(async (mask, rank) => {
    const stack = layers(shown.url, answer.width, answer.height);
    stack.append(await maskCanvas(mask.png_b64, MASK_COLOURS[rank % MASK_COLOURS.length]));
    if (shown.points.length) stack.append(markers(shown.points, answer.width, answer.height, Math.max(answer.width, answer.height) / 40));
    const link = element("a", { href: maskBlobUrl(mask.png_b64), download: `mask-${rank + 1}.png` }, "mask PNG");
    return element("figure", { class: "card mask-card", "data-rank": String(rank + 1), "data-score": String(mask.score), "data-area": String(mask.area) },
      stack,
      element("figcaption", {},
        element("span", {}, `${rank === 0 ? "best" : `#${rank + 1}`} · score ${mask.score.toFixed(3)}`),
        element("span", {}, `area ${mask.area} px · ${((100 * mask.area) / area).toFixed(1)}% of the image`),
        link));
  }));
  for (const link of document.querySelectorAll("#segment-results a[href^=blob]")) URL.revokeObjectURL(link.href);
  $("#segment-results").replaceChildren(...cards);
  const on = shown.points.filter((p) => p.label).length;
  const prompt = answer.prompt === "category"
    ? `the category “${shown.category}”`
    : `${shown.points.length} point${shown.points.length === 1 ? "" : "s"} (${on} on the garment, ${shown.points.length - on} background)`;
  const summary = $("#segment-summary");
  summary.hidden = false;
  summary.textContent = `${answer.masks.length} mask${answer.masks.length === 1 ? "" : "s"} for ${prompt}, best first · `
    + `${answer.width}×${answer.height}${answer.image_id ? ` · stored image ${answer.image_id}` : ""} · ${answer.model}`;
  if (shown.url === masking.url && answer.masks.length) {
    showStageMask(masking, await maskCanvas(answer.masks[0].png_b64, MASK_COLOURS[0]));
  }
}

function setUpSegment() {
  const form = $("#segment-form");
  if (!form) return;
  const properties = requestSchema("/segment").properties || {};
  if (!properties.multimask) form.elements.multimask.closest("label").remove();
  alternatives(form, ["file", "image_id"]);
  masking = pointStage("segment", form, {
    cleared: (chosen) => {
      $("#segment-results").replaceChildren();
      $("#segment-summary").hidden = true;
      $("#segment-work").hidden = !chosen;
    },
  });
  form.elements.file.addEventListener("change", () => loadStageImage(masking));
  form.elements.image_id.addEventListener("change", () => loadStageImage(masking));

  const others = () => [...form.querySelectorAll("#segment-categories button, #segment-clear")];
  function run(label, prompt) {
    const shown = { url: masking.url, points: prompt.category ? [] : masking.points.slice(), category: prompt.category };
    others().forEach((button) => { button.disabled = true; });
    return busy(form, label, async () => {
      const answer = await postJSON("segment", { ...(await imageOf(form)), ...prompt });
      await renderMasks(answer, shown);
    }).finally(() => others().forEach((button) => { button.disabled = false; }));
  }

  const categories = properties.category ? (choicesOf(properties.category) || []).filter((c) => c !== null) : [];
  $("#segment-categories").append(...categories.map((category) => {
    const button = element("button", { type: "button", "data-category": category }, CATEGORY_WORDS[category] || category);
    button.addEventListener("click", () => run("Masking", { category }));
    return button;
  }));
  $("#segment-clear").addEventListener("click", () => {
    masking.points = [];
    showStageMask(masking, null);
    $("#segment-results").replaceChildren();
    $("#segment-summary").hidden = true;
    $(".error", form).hidden = true;
    renderPoints(masking);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = { points: masking.points.map((p) => [p.x, p.y]), labels: masking.points.map((p) => p.label) };
    if (form.elements.multimask?.value) prompt.multimask = form.elements.multimask.value === "true";
    run("Segmenting", prompt);
  });
}

// --- Try-on ----------------------------------------------------------------------------------------

// The person (a point stage, like Masks), the mask's category when one is chosen instead of points,
// and the garment chosen in the form.
let fitting = null;
let garmentChosen = null;

// The garment in the form: an uploaded shot, a stored image or an indexed product; null for none.
function garmentOf(form) {
  const file = form.elements.garment_file.files[0];
  if (file) return { file, name: file.name, url: URL.createObjectURL(file) };
  const id = form.elements.garment_image_id.value.trim();
  if (id) return { image_id: id, name: id };
  const product = form.elements.garment_product_id?.value.trim();
  return product ? { product_id: product, name: product } : null;
}

async function garmentBody(garment) {
  if (!garment) return {};
  if (garment.file) return { garment: await fileAsBase64(garment.file) };
  return garment.image_id ? { garment_image_id: garment.image_id } : { garment_product_id: garment.product_id };
}

function garmentCard(garment) {
  let card;
  if (garment.file) card = figureCard(garment.url, [`Garment: ${garment.name}`, "uploaded"], garment.name);
  else if (garment.image_id) card = imageCard(garment.image_id, [`Garment: ${garment.image_id}`, "stored image"]);
  else card = figureCard(blobUrl(`products/${encodeURIComponent(garment.product_id)}/image`), [`Garment: product ${garment.product_id}`], garment.product_id);
  card.classList.add("garment-card");
  return card;
}

// A newly chosen garment replaces the last results with its own card; a file that is no image says so.
function showGarment(form) {
  if (garmentChosen?.file) URL.revokeObjectURL(garmentChosen.url);
  garmentChosen = garmentOf(form);
  const alert = $("#tryon-garment-error");
  alert.hidden = true;
  $("#tryon-summary").hidden = true;
  $("#tryon-results").replaceChildren(...(garmentChosen ? [garmentCard(garmentChosen)] : []));
  $("#tryon-work").hidden = !garmentChosen && !fitting.url && !form.elements.image_id.value.trim() && !form.elements.file.files.length;
  const shown = garmentChosen;
  if (shown?.file) {
    imageSize(shown.url).catch(() => {
      if (shown === garmentChosen) showError(alert, new Error(`${shown.name} could not be read as an image`));
    });
  }
}

// The person's fields under the names /tryon gives them.
async function personOf(form) {
  const { image, image_id: id } = await imageOf(form);
  if (image !== undefined) return { person: image };
  return id !== undefined ? { person_image_id: id } : {};
}

function maskPrompt(shown) {
  if (shown.category) return { category: shown.category };
  if (shown.points.length) return { points: shown.points.map((p) => [p.x, p.y]), labels: shown.points.map((p) => p.label) };
  return {}; // the API says what is missing (or, for a product, takes the category of its type)
}

function describeMask(answer, shown) {
  if (answer.mask_source === "category") return `the category “${answer.category || shown.category}”`;
  if (answer.mask_source === "mask") return "the mask sent";
  const on = shown.points.filter((p) => p.label).length;
  return `${shown.points.length} point${shown.points.length === 1 ? "" : "s"} (${on} on the garment, ${shown.points.length - on} background)`;
}

// The mask used over the person, the garment (a try-on) and the stored result, side by side.
async function renderFitting(answer, shown, kind) {
  const { width, height } = answer;
  const person = shown.url || (answer.source_image_id ? await imageUrl(answer.source_image_id).catch(() => null) : null);
  const stack = layers(person, width, height);
  stack.append(await maskCanvas(answer.mask, MASK_COLOURS[0]));
  if (answer.mask_source === "points") stack.append(markers(shown.points, width, height, Math.max(width, height) / 40));
  const share = ((100 * answer.changed_pixels) / (width * height)).toFixed(1);
  const maskCard = element("figure", { class: "card mask-card", "data-mask-source": answer.mask_source, "data-changed-pixels": String(answer.changed_pixels) },
    stack,
    element("figcaption", {},
      element("span", {}, `Mask from ${describeMask(answer, shown)}`),
      element("span", {}, `${answer.changed_pixels} px redrawn · ${share}% of the image`),
      element("a", { href: maskBlobUrl(answer.mask), download: `mask-${answer.id}.png` }, "mask PNG")));
  const title = kind === "tryon" ? "Try-on" : `Inpainted: “${shown.prompt}”`;
  const result = withActions(imageCard(answer.id, [title, `seed ${answer.seed} · ${width}×${height}`, answer.model]), answer.id);
  result.classList.add("result-card");
  result.dataset.kind = kind;
  for (const link of document.querySelectorAll("#tryon-results a[href^=blob]")) URL.revokeObjectURL(link.href);
  const garment = kind === "tryon" && shown.garment ? garmentCard(shown.garment) : null;
  $("#tryon-results").replaceChildren(...[maskCard, garment, result].filter(Boolean));
  const summary = $("#tryon-summary");
  summary.hidden = false;
  summary.textContent = `${kind === "tryon" ? "Try-on" : "Inpainting"} inside ${describeMask(answer, shown)} · ${answer.changed_pixels} px redrawn · `
    + `seed ${answer.seed}${answer.source_image_id ? ` · person ${answer.source_image_id}` : ""} · stored as ${answer.id}`;
  if (shown.url && shown.url === fitting.url) showStageMask(fitting, await maskCanvas(answer.mask, MASK_COLOURS[0]));
}

function setUpTryon() {
  const form = $("#tryon-form");
  if (!form) return;
  const properties = requestSchema("/tryon").properties || {};
  const inpainting = form.querySelector("#tryon-inpaint") ? requestSchema("/inpaint").properties || {} : {};
  applyDefaults(form, { steps: properties.steps, guidance: properties.guidance });
  // The endpoints' own defaults where they differ (guidance): the field stays empty, its placeholder says both.
  for (const name of ["steps", "guidance"]) {
    const ours = resolve(properties[name]).default;
    const theirs = inpainting[name] ? resolve(inpainting[name]).default : ours;
    if (ours !== theirs) {
      form.elements[name].value = "";
      form.elements[name].placeholder = `${ours} (Inpaint ${theirs})`;
    }
  }
  if (!properties.garment_product_id) form.elements.garment_product_id.closest("label").remove();
  alternatives(form, ["file", "image_id"]);
  alternatives(form, ["garment_file", "garment_image_id", "garment_product_id"]);

  const categoryButtons = () => [...form.querySelectorAll("#tryon-categories button")];
  function chooseCategory(category) {
    fitting.category = category;
    for (const button of categoryButtons()) button.setAttribute("aria-pressed", String(button.dataset.category === category));
    if (category && fitting.points.length) {
      fitting.points = []; // a mask comes from points or from a category, not both
      showStageMask(fitting, null);
      renderPoints(fitting);
    }
  }
  fitting = pointStage("tryon", form, {
    empty: "No points yet: click the garment to replace, or choose a category.",
    clicked: () => { if (fitting.category) chooseCategory(null); },
    cleared: () => {
      $("#tryon-summary").hidden = true;
      $("#tryon-results").replaceChildren(...(garmentChosen ? [garmentCard(garmentChosen)] : []));
      $("#tryon-work").hidden = !garmentChosen && !form.elements.image_id.value.trim() && !form.elements.file.files.length;
    },
  });
  fitting.category = null;
  form.elements.file.addEventListener("change", () => loadStageImage(fitting));
  form.elements.image_id.addEventListener("change", () => loadStageImage(fitting));
  for (const name of ["garment_file", "garment_image_id", "garment_product_id"]) {
    form.elements[name]?.addEventListener("change", () => showGarment(form));
  }

  const categories = properties.category ? (choicesOf(properties.category) || []).filter((c) => c !== null) : [];
  $("#tryon-categories").append(...categories.map((category) => {
    const button = element("button", { type: "button", "data-category": category, "aria-pressed": "false" }, CATEGORY_WORDS[category] || category);
    button.addEventListener("click", () => chooseCategory(fitting.category === category ? null : category));
    return button;
  }));
  if (!categories.length) $("#tryon-mask-choice").remove();
  $("#tryon-clear").addEventListener("click", () => {
    fitting.points = [];
    chooseCategory(null);
    showStageMask(fitting, null);
    $(".error", form).hidden = true;
    renderPoints(fitting);
  });

  const others = () => [...form.querySelectorAll("#tryon-categories button, #tryon-clear, #tryon-inpaint")];
  function run(label, kind, body) {
    const shown = { url: fitting.url, points: fitting.category ? [] : fitting.points.slice(), category: fitting.category, garment: garmentChosen, prompt: form.elements.prompt?.value };
    others().forEach((button) => { button.disabled = true; });
    return busy(form, label, async () => {
      const answer = await postJSON(kind, { ...(await body(shown)), ...maskPrompt(shown), ...numbers(form, ["seed", "steps", "guidance"]) });
      await renderFitting(answer, shown, kind);
    }).finally(() => others().forEach((button) => { button.disabled = false; }));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run("Trying on", "tryon", async (shown) => ({ ...(await personOf(form)), ...(await garmentBody(shown.garment)) }));
  });
  $("#tryon-inpaint")?.addEventListener("click", () => {
    run("Inpainting", "inpaint", async (shown) => {
      const body = { ...(await imageOf(form)), prompt: shown.prompt };
      if (form.elements.negative_prompt.value.trim()) body.negative_prompt = form.elements.negative_prompt.value;
      return body;
    });
  });
}

// --- Similar products ------------------------------------------------------------------------------

function productCard(product) {
  const local = !/^https?:/.test(product.image_url);
  // A shop's own image URL is not fetched (the page asks nothing of other hosts): it is a link.
  const source = local ? blobUrl(product.image_url.replace(/^\//, "")) : Promise.reject(new Error("elsewhere"));
  const card = figureCard(source, [
    product.name,
    [product.product_type, product.colour, product.pattern].filter(Boolean).join(" · "),
    `${product.price.toFixed(2)} EUR · similarity ${product.score.toFixed(3)}`,
  ], product.product_id);
  card.classList.add("product");
  card.dataset.productId = product.product_id;
  if (!local) card.append(element("a", { href: product.image_url, target: "_blank", rel: "noopener noreferrer" }, "shot at the shop"));
  return card;
}

function setUpRecommend() {
  const form = $("#recommend-form");
  if (!form) return;
  const properties = requestSchema("/recommend").properties || {};
  applyDefaults(form, properties);
  for (const [name, list] of [["product_type", "#recommend-types"], ["colour", "#recommend-colours"]]) {
    $(list).append(...(choicesOf(properties[name] || {}) || []).filter((c) => c !== null).map((c) => element("option", { value: c })));
  }
  alternatives(form, ["file", "image_id", "text"]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, "Searching", async () => {
      const body = await imageOf(form);
      if (form.elements.text.value.trim()) body.text = form.elements.text.value;
      for (const name of ["product_type", "colour"]) {
        if (form.elements[name].value) body[name] = form.elements[name].value;
      }
      Object.assign(body, numbers(form, ["k", "min_price", "max_price"]));
      const answer = await postJSON("recommend", body);
      const filters = Object.entries(answer.filters).map(([name, value]) => `${name.replace(/_/g, " ")} ${value}`);
      const summary = $("#recommend-summary");
      summary.hidden = false;
      const like = answer.query === "text" ? "the words" : "the image";
      summary.textContent = `${answer.products.length} of ${answer.k} products like ${like}${filters.length ? `, ${filters.join(", ")}` : ""}, most similar first`;
      $("#recommend-results").replaceChildren(...answer.products.map(productCard));
      if (!answer.products.length) $("#recommend-results").append(element("p", { class: "hint" }, "No product matches these filters."));
    });
  });
}

// --- Conversation ----------------------------------------------------------------------------------

const ACTION_WORDS = { generate: "Drawing", edit: "Changing it", recommend: "Finding similar products for the current image" };
const SOURCE_WORDS = { translation: "from the translation", lexicon: "from the German word list" };

function turnItem(turn) {
  const when = new Date(turn.created_at).toLocaleTimeString();
  const user = element("div", { class: "bubble user" },
    element("p", { class: "message" }, turn.message),
    element("span", { class: "hint" }, `#${turn.seq} · ${when} · ${turn.language}`));
  const how = turn.understood === "named" ? "action named" : "understood from the words";
  const studio = element("div", { class: "bubble studio" },
    element("p", { class: "understood" },
      element("span", { class: "badge" }, turn.action), ` ${ACTION_WORDS[turn.action] || turn.action}`,
      turn.text ? ": " : "", turn.text ? element("strong", {}, turn.text) : null,
      element("span", { class: "hint" }, ` (${how}${SOURCE_WORDS[turn.text_source] ? `, ${SOURCE_WORDS[turn.text_source]}` : ""})`)));
  if (turn.translation) {
    studio.append(element("p", { class: "hint" }, `translation: “${turn.translation.text}”${turn.translation.reliable ? "" : " (not reliable)"}`));
  }
  if (turn.prompt) studio.append(element("p", { class: "hint" }, `prompt: ${turn.prompt}`));
  if (turn.based_on) studio.append(element("p", { class: "hint" }, `from image ${turn.based_on}`));
  if (turn.images.length) {
    studio.append(element("div", { class: "turn-images" }, ...turn.images.map((image) => withActions(imageCard(image.id, [
      `CLIP ${score(image.clip_score)}`, `seed ${image.seed ?? "–"} · ${image.width}×${image.height}`,
      image.source_image_id ? `edited from ${image.source_image_id}` : "",
    ]), image.id))));
  }
  if (turn.recommendations.length) {
    studio.append(element("h4", {}, "Similar products"), element("div", { class: "grid products" }, ...turn.recommendations.map(productCard)));
  }
  if (turn.recommendation_error) studio.append(element("p", { class: "hint error-text" }, `No similar products: ${turn.recommendation_error}`));
  return element("li", { class: "turn", "data-seq": String(turn.seq), "data-action": turn.action }, user, studio);
}

function conversationHeader(session) {
  $("#conversation-id").textContent = session
    ? `session ${session.id} · started ${new Date(session.created_at).toLocaleString()}`
    : "no conversation yet: the first message starts one";
}

function renderSession(session) {
  conversationHeader(session);
  const turns = $("#conversation-turns");
  turns.replaceChildren(...(session ? session.turns.map(turnItem) : []));
  if (!turns.children.length) turns.append(element("li", { class: "hint empty" }, "Describe an outfit (“a red summer dress”), then change it in words (“make it blue”) or ask for similar products."));
}

async function loadConversation() {
  const alert = $("#conversation-error");
  alert.hidden = true;
  const id = sessionStorage.getItem(SESSION_NAME);
  if (!id) return renderSession(null);
  try {
    renderSession(await getJSON(`sessions/${encodeURIComponent(id)}`));
  } catch (error) {
    showError(alert, error);
    if (error instanceof ApiError && error.status === 404) {
      sessionStorage.removeItem(SESSION_NAME);
      renderSession(null);
    }
  }
}

async function newConversation() {
  const session = await (await request("sessions", { method: "POST" })).json();
  sessionStorage.setItem(SESSION_NAME, session.id);
  $("#conversation-error").hidden = true;
  renderSession(session);
  return session.id;
}

function setUpConversation() {
  const form = $("#message-form");
  if (!form) return;
  const properties = requestSchema("/sessions/{session_id}/messages").properties || {};
  const names = { en: "English", de: "German", auto: "detect" };
  const actions = (choicesOf(properties.action || {}) || []).filter((a) => a !== null);
  form.elements.action.append(...actions.map((a) => element("option", { value: a }, a)));
  const languages = choicesOf(properties.language || {}) || [];
  form.elements.language.append(...languages.map((l) => element("option", { value: l }, names[l] || l)));
  if (languages.length) form.elements.language.value = resolve(properties.language).default ?? languages[0];
  else form.elements.language.closest("label").remove();
  VIEW_OPENERS.conversation = loadConversation;
  $("#conversation-reload").addEventListener("click", loadConversation);
  $("#conversation-new").addEventListener("click", () => newConversation().catch((error) => showError($("#conversation-error"), error)));
  form.elements.message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!$("button[type=submit]", form).disabled) form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = form.elements.message.value;
    const body = { message, ...numbers(form, ["seed"]) };
    if (form.elements.action.value) body.action = form.elements.action.value;
    if (form.elements.language?.value) body.language = form.elements.language.value;
    busy(form, "Working", async () => {
      const id = sessionStorage.getItem(SESSION_NAME) || (await newConversation());
      const turns = $("#conversation-turns");
      const pending = element("li", { class: "turn pending" }, element("div", { class: "bubble user" }, element("p", { class: "message" }, message)));
      turns.append(pending);
      let turn;
      try {
        turn = await postJSON(`sessions/${encodeURIComponent(id)}/messages`, body);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404 && error.body.field === "session_id") {
          sessionStorage.removeItem(SESSION_NAME); // gone (expired): the next message starts a new one
          conversationHeader(null);
        }
        throw error;
      } finally {
        pending.remove();
      }
      $(".empty", turns)?.remove();
      turns.append(turnItem(turn));
      form.elements.message.value = "";
      form.scrollIntoView({ block: "end" });
    });
  });
}

// --- start -----------------------------------------------------------------------------------------

async function start() {
  try {
    schema = await (await fetch(new URL("openapi.json", API))).json();
  } catch (error) {
    const alert = $("#load-error");
    alert.hidden = false;
    alert.textContent = `The gateway's API description could not be read (${error.message}); is the gateway running?`;
    return;
  }
  discover();
  setUpGenerate();
  setUpModelShot();
  setUpCatalog();
  setUpGallery();
  setUpPopularity();
  setUpEdit();
  setUpSegment();
  setUpTryon();
  setUpRecommend();
  setUpConversation();
  show(location.hash.slice(1));
  document.body.dataset.ready = "true";
}

start();
