"""The attribute lexicon, as data: German and English surface forms -> canonical English.

Keys are lowercase stems or full words; "both" holds the words German catalog texts borrow from English,
looked up in either language. The parser (`fashion_studio.attributes.parser`) reads these tables only.
"""

from __future__ import annotations

PRODUCTS: dict[str, dict[str, str]] = {
    "both": {
        "t-shirt": "t-shirt", "tshirt": "t-shirt", "top": "top", "tanktop": "tank top", "tank top": "tank top",
        "croptop": "crop top", "crop top": "crop top", "bodysuit": "bodysuit", "polo shirt": "polo shirt",
        "poloshirt": "polo shirt", "polo": "polo shirt", "longsleeve": "long-sleeve top", "sweatshirt": "sweatshirt",
        "sweater": "sweater", "pullover": "sweater", "hoodie": "hoodie", "cardigan": "cardigan", "blazer": "blazer",
        "tunika": "tunic", "kimono": "kimono", "jeans": "jeans", "chino": "chinos", "chinos": "chinos",
        "jogger": "joggers", "leggings": "leggings", "shorts": "shorts", "bermuda": "shorts", "bermudas": "shorts",
        "jumpsuit": "jumpsuit", "playsuit": "playsuit", "parka": "parka", "anorak": "anorak",
        "trenchcoat": "trench coat", "blouson": "blouson", "windbreaker": "windbreaker", "poncho": "poncho",
        "cape": "cape", "sneaker": "sneakers", "sneakers": "sneakers", "boots": "boots",
        "chelsea boots": "chelsea boots", "flip flops": "flip-flops", "flipflops": "flip-flops",
        "ballerinas": "ballet flats", "pumps": "pumps", "loafer": "loafers", "loafers": "loafers",
        "clogs": "clogs", "espadrilles": "espadrilles", "mules": "mules", "shopper": "tote bag",
        "clutch": "clutch", "beanie": "beanie", "cap": "cap", "bucket hat": "bucket hat",
        "boxershorts": "boxer shorts", "pyjama": "pyjamas", "bikini": "bikini", "bikinitop": "bikini top",
        "tankini": "tankini",
    },
    "de": {
        "shirt": "t-shirt", "kurzarmshirt": "t-shirt", "langarmshirt": "long-sleeve top", "oberteil": "top",
        "body": "bodysuit", "hemd": "shirt", "oberhemd": "shirt", "bluse": "blouse", "hemdbluse": "blouse",
        "pulli": "sweater", "kapuzenpullover": "hoodie", "kapuzenpulli": "hoodie", "kapuzensweatshirt": "hoodie",
        "kapuzenshirt": "hoodie", "strickjacke": "cardigan", "weste": "vest", "pullunder": "sweater vest",
        "sakko": "blazer", "anzug": "suit", "hose": "trousers", "jeanshose": "jeans", "chinohose": "chinos",
        "jogginghose": "joggers", "sweathose": "joggers", "trainingshose": "joggers", "leggins": "leggings",
        "rock": "skirt", "röcke": "skirt", "latzhose": "dungarees", "overall": "jumpsuit", "einteiler": "jumpsuit",
        "strampler": "romper", "kleid": "dress", "kleidchen": "dress", "hemdblusenkleid": "shirt dress",
        "dirndl": "dirndl", "jacke": "jacket", "jäckchen": "jacket", "mantel": "coat", "mäntel": "coat",
        "regenjacke": "rain jacket", "regenmantel": "raincoat", "bomberjacke": "bomber jacket",
        "bikerjacke": "biker jacket", "schuh": "shoes", "turnschuh": "sneakers", "sportschuh": "sneakers",
        "laufschuh": "running shoes", "stiefel": "boots", "stiefelette": "ankle boots", "gummistiefel": "rain boots",
        "sandale": "sandals", "sandalette": "sandals", "pantolette": "slides", "badelatschen": "slides",
        "zehentrenner": "flip-flops", "hausschuh": "slippers", "pantoffel": "slippers", "ballerina": "ballet flats",
        "slipper": "loafers", "mokassin": "moccasins", "halbschuh": "shoes", "schnürschuh": "lace-up shoes",
        "handtasche": "handbag", "umhängetasche": "crossbody bag", "schultertasche": "shoulder bag",
        "rucksack": "backpack", "gürteltasche": "belt bag", "bauchtasche": "belt bag", "geldbörse": "wallet",
        "portemonnaie": "wallet", "gürtel": "belt", "schal": "scarf", "halstuch": "scarf", "mütze": "beanie",
        "basecap": "cap", "baseballcap": "cap", "kappe": "cap", "hut": "hat", "sonnenhut": "sun hat",
        "fischerhut": "bucket hat", "handschuh": "gloves", "fäustling": "mittens", "sonnenbrille": "sunglasses",
        "krawatte": "tie", "fliege": "bow tie", "stirnband": "headband", "haarband": "headband",
        "halskette": "necklace", "kette": "necklace", "armband": "bracelet", "ohrring": "earrings",
        "socke": "socks", "strumpf": "socks", "strümpfe": "socks", "kniestrümpfe": "knee socks",
        "strumpfhose": "tights", "bh": "bra", "unterhose": "underpants", "slip": "briefs", "panty": "briefs",
        "unterhemd": "undershirt", "schlafanzug": "pyjamas", "nachthemd": "nightdress", "bademantel": "bathrobe",
        "badeanzug": "swimsuit", "badehose": "swim shorts", "badeshorts": "swim shorts",
        "bikinihose": "bikini bottoms", "bikinioberteil": "bikini top",
    },
    "en": {
        "tee": "t-shirt", "shirt": "shirt", "blouse": "blouse", "tunic": "tunic", "camisole": "camisole",
        "cami": "camisole", "long sleeve top": "long-sleeve top", "jumper": "sweater", "vest": "vest",
        "gilet": "vest", "waistcoat": "vest", "suit": "suit", "trousers": "trousers", "pants": "trousers",
        "sweatpants": "joggers", "joggers": "joggers", "skirt": "skirt", "dress": "dress",
        "shirt dress": "shirt dress", "slip dress": "dress", "romper": "romper", "onesie": "romper",
        "dungarees": "dungarees", "overalls": "dungarees", "jacket": "jacket", "coat": "coat",
        "trench coat": "trench coat", "raincoat": "raincoat", "rain jacket": "rain jacket",
        "bomber jacket": "bomber jacket", "biker jacket": "biker jacket", "shoe": "shoes", "shoes": "shoes",
        "trainers": "sneakers", "running shoes": "running shoes", "boot": "boots", "ankle boots": "ankle boots",
        "rain boots": "rain boots", "sandal": "sandals", "sandals": "sandals", "slides": "slides",
        "slippers": "slippers", "ballet flats": "ballet flats", "moccasins": "moccasins", "heels": "pumps",
        "bag": "bag", "handbag": "handbag", "backpack": "backpack", "tote bag": "tote bag", "tote": "tote bag",
        "crossbody bag": "crossbody bag", "shoulder bag": "shoulder bag", "belt bag": "belt bag",
        "wallet": "wallet", "belt": "belt", "scarf": "scarf", "hat": "hat", "sun hat": "sun hat",
        "baseball cap": "cap", "gloves": "gloves", "mittens": "mittens", "sunglasses": "sunglasses",
        "necktie": "tie", "bow tie": "bow tie", "headband": "headband", "necklace": "necklace",
        "bracelet": "bracelet", "earrings": "earrings", "socks": "socks", "knee socks": "knee socks",
        "tights": "tights", "bra": "bra", "briefs": "briefs", "underpants": "underpants", "boxers": "boxer shorts",
        "boxer shorts": "boxer shorts", "undershirt": "undershirt", "pyjamas": "pyjamas", "pajamas": "pyjamas",
        "nightdress": "nightdress", "nightie": "nightdress", "bathrobe": "bathrobe", "swimsuit": "swimsuit",
        "swimming costume": "swimsuit", "swim shorts": "swim shorts", "bikini top": "bikini top",
        "bikini bottoms": "bikini bottoms", "tracksuit": "tracksuit",
    },
}

PRODUCT_CATEGORY: dict[str, str] = {
    **dict.fromkeys(
        ["t-shirt", "top", "tank top", "crop top", "bodysuit", "polo shirt", "long-sleeve top", "sweatshirt",
         "sweater", "hoodie", "cardigan", "blazer", "tunic", "kimono", "shirt", "blouse", "camisole", "vest",
         "sweater vest", "suit"],
        "tops",
    ),
    **dict.fromkeys(
        ["jeans", "chinos", "joggers", "leggings", "shorts", "trousers", "skirt", "dungarees"], "bottoms"
    ),
    **dict.fromkeys(["dress", "shirt dress", "dirndl", "jumpsuit", "playsuit", "romper"], "dresses"),
    **dict.fromkeys(
        ["jacket", "coat", "parka", "anorak", "trench coat", "blouson", "windbreaker", "poncho", "cape",
         "rain jacket", "raincoat", "bomber jacket", "biker jacket"],
        "outerwear",
    ),
    **dict.fromkeys(
        ["sneakers", "boots", "chelsea boots", "flip-flops", "ballet flats", "pumps", "loafers", "clogs",
         "espadrilles", "mules", "shoes", "running shoes", "ankle boots", "rain boots", "sandals", "slides",
         "slippers", "moccasins", "lace-up shoes"],
        "shoes",
    ),
    **dict.fromkeys(
        ["tote bag", "clutch", "beanie", "cap", "bucket hat", "handbag", "crossbody bag", "shoulder bag",
         "backpack", "belt bag", "wallet", "belt", "scarf", "hat", "sun hat", "gloves", "mittens", "sunglasses",
         "tie", "bow tie", "headband", "necklace", "bracelet", "earrings", "socks", "knee socks", "tights", "bag"],
        "accessories",
    ),
    **dict.fromkeys(
        ["boxer shorts", "pyjamas", "bra", "underpants", "briefs", "undershirt", "nightdress"], "underwear"
    ),
    **dict.fromkeys(["bikini", "bikini top", "tankini", "swimsuit", "swim shorts", "bikini bottoms"], "swimwear"),
    **dict.fromkeys(["bathrobe", "tracksuit"], "other"),
}

# Products named with "a pair of".
PAIR_NOUNS = frozenset(
    {
        "jeans", "chinos", "joggers", "leggings", "shorts", "trousers", "dungarees", "sneakers", "boots",
        "chelsea boots", "flip-flops", "ballet flats", "pumps", "loafers", "clogs", "espadrilles", "mules",
        "shoes", "running shoes", "ankle boots", "rain boots", "sandals", "slides", "slippers", "moccasins",
        "lace-up shoes", "gloves", "mittens", "sunglasses", "earrings", "socks", "knee socks", "tights",
        "boxer shorts", "pyjamas", "underpants", "briefs", "swim shorts", "bikini bottoms",
    }
)

# A product named inside another product's compound ("Jeansjacke") says what the latter is made of.
PRODUCT_AS_MATERIAL = {"jeans": "denim"}

TARGETS: dict[str, dict[str, str]] = {
    "both": {"kids": "children", "baby": "baby", "babys": "baby", "unisex": "unisex"},
    "de": {
        "damen": "women", "dame": "women", "frauen": "women", "frau": "women", "herren": "men", "herr": "men",
        "männer": "men", "mann": "men", "mädchen": "girls", "jungen": "boys", "jungs": "boys",
        "kinder": "children", "kind": "children", "teenager": "children",
    },
    "en": {
        "women": "women", "women's": "women", "womens": "women", "woman's": "women", "ladies": "women",
        "men": "men", "men's": "men", "mens": "men", "man's": "men", "girls": "girls", "girl": "girls",
        "girl's": "girls", "boys": "boys", "boy": "boys", "boy's": "boys", "kid's": "children",
        "children": "children", "children's": "children", "childrens": "children", "child": "children",
        "toddler": "children", "babies": "baby", "baby's": "baby", "infant": "baby",
    },
}

COLOURS: dict[str, dict[str, str]] = {
    "both": {
        "orange": "orange", "pink": "pink", "beige": "beige", "ecru": "ecru", "offwhite": "off-white",
        "navy": "navy", "khaki": "khaki", "bordeaux": "burgundy", "gold": "gold", "taupe": "taupe",
        "camel": "camel", "cognac": "cognac", "mint": "mint", "petrol": "petrol", "apricot": "apricot",
        "mauve": "mauve", "fuchsia": "fuchsia", "magenta": "magenta", "lila": "lilac", "creme": "cream",
        "cream": "cream", "oliv": "olive", "olive": "olive", "turquoise": "turquoise",
    },
    "de": {
        "schwarz": "black", "weiß": "white", "grau": "grey", "rot": "red", "blau": "blue", "grün": "green",
        "gelb": "yellow", "rosa": "pink", "violett": "purple", "braun": "brown", "wollweiß": "off-white",
        "naturweiß": "off-white", "cremeweiß": "cream", "marine": "navy", "marineblau": "navy",
        "navyblau": "navy", "türkis": "turquoise", "mintgrün": "mint", "olivgrün": "olive",
        "bordeauxrot": "burgundy", "weinrot": "burgundy", "golden": "gold", "silber": "silver",
        "silbern": "silver", "anthrazit": "charcoal", "senf": "mustard", "senfgelb": "mustard",
        "koralle": "coral", "lachs": "salmon", "flieder": "lilac", "altrosa": "dusty pink", "rosé": "blush pink",
        "kirschrot": "cherry red", "eisblau": "ice blue", "himmelblau": "sky blue", "royalblau": "royal blue",
        "jeansblau": "denim blue", "tannengrün": "dark green", "smaragdgrün": "emerald green",
        "flaschengrün": "bottle green", "rostrot": "rust", "rost": "rust", "ocker": "ochre", "bunt": "multicoloured",
        "mehrfarbig": "multicoloured", "sand": "sand", "sandfarben": "sand", "hellbraun": "light brown",
    },
    "en": {
        "black": "black", "white": "white", "grey": "grey", "gray": "grey", "red": "red", "blue": "blue",
        "navy blue": "navy", "green": "green", "yellow": "yellow", "purple": "purple", "violet": "purple",
        "lilac": "lilac", "brown": "brown", "off-white": "off-white", "burgundy": "burgundy", "maroon": "burgundy",
        "teal": "teal", "golden": "gold", "silver": "silver", "charcoal": "charcoal", "tan": "tan",
        "mustard": "mustard", "coral": "coral", "rust": "rust", "dusty pink": "dusty pink",
        "multicoloured": "multicoloured", "multicolored": "multicoloured", "multicolour": "multicoloured",
    },
}

COLOUR_MODIFIERS: dict[str, dict[str, str]] = {
    "both": {"neon": "neon", "pastell": "pastel", "pastel": "pastel"},
    "de": {"dunkel": "dark", "hell": "light", "zart": "pale", "knall": "bright", "tief": "deep", "mittel": "mid"},
    "en": {"dark": "dark", "light": "light", "pale": "pale", "bright": "bright", "deep": "deep"},
}

MATERIALS: dict[str, dict[str, str]] = {
    "both": {
        "polyester": "polyester", "denim": "denim", "satin": "satin", "chiffon": "chiffon", "jersey": "jersey",
        "fleece": "fleece", "nylon": "nylon", "modal": "modal", "lyocell": "lyocell", "tencel": "lyocell",
        "tweed": "tweed", "canvas": "canvas", "twill": "twill", "chambray": "chambray", "mesh": "mesh",
        "cashmere": "cashmere", "merino": "merino wool", "softshell": "softshell", "velours": "velour",
        "cord": "corduroy",
    },
    "de": {
        "baumwolle": "cotton", "baumwoll": "cotton", "biobaumwolle": "organic cotton",
        "bio baumwolle": "organic cotton", "elasthan": "elastane", "viskose": "viscose", "leinen": "linen",
        "wolle": "wool", "woll": "wool", "merinowolle": "merino wool", "kaschmir": "cashmere", "seide": "silk",
        "seiden": "silk", "leder": "leather", "echtleder": "leather", "glattleder": "leather",
        "kunstleder": "faux leather", "lederimitat": "faux leather", "wildleder": "suede",
        "veloursleder": "suede", "nubukleder": "nubuck", "lackleder": "patent leather", "kord": "corduroy",
        "samt": "velvet", "nicki": "velour", "strick": "knit", "gestrickt": "knit", "feinstrick": "fine knit",
        "grobstrick": "chunky knit", "sweat": "sweat fabric", "musselin": "muslin", "tüll": "tulle",
        "spitze": "lace", "frottee": "terry", "polyamid": "polyamide", "acryl": "acrylic",
        "kunstfell": "faux fur", "webpelz": "faux fur", "teddyfell": "teddy fleece", "pelz": "fur", "fell": "fur",
        "daunen": "down", "flanell": "flannel", "popeline": "poplin", "neopren": "neoprene", "gummi": "rubber",
        "kork": "cork", "stroh": "straw", "bast": "raffia", "filz": "felt", "mikrofaser": "microfibre",
        "häkel": "crochet", "gehäkelt": "crochet", "strass": "rhinestones",
        "perlmutt": "mother-of-pearl", "metall": "metal", "piqué": "piqué", "pique": "piqué",
    },
    "en": {
        "cotton": "cotton", "organic cotton": "organic cotton", "elastane": "elastane", "spandex": "elastane",
        "viscose": "viscose", "rayon": "viscose", "linen": "linen", "wool": "wool", "merino wool": "merino wool",
        "silk": "silk", "leather": "leather", "faux leather": "faux leather", "vegan leather": "faux leather",
        "suede": "suede", "nubuck": "nubuck", "patent leather": "patent leather", "corduroy": "corduroy",
        "velvet": "velvet", "velour": "velour", "knit": "knit", "knitted": "knit", "muslin": "muslin",
        "tulle": "tulle", "lace": "lace", "terry": "terry", "polyamide": "polyamide", "acrylic": "acrylic",
        "faux fur": "faux fur", "fur": "fur", "down filled": "down", "flannel": "flannel", "poplin": "poplin",
        "neoprene": "neoprene", "rubber": "rubber", "cork": "cork", "straw": "straw", "raffia": "raffia",
        "crochet": "crochet", "piqué": "piqué", "pique": "piqué", "metal": "metal", "mother of pearl": "mother-of-pearl",
    },
}

PATTERNS: dict[str, dict[str, str]] = {
    "both": {
        "camouflage": "camouflage", "camo": "camouflage", "melange": "melange", "paisley": "paisley",
        "jacquard": "jacquard", "animal print": "animal print", "animalprint": "animal print",
        "leopard": "animal print", "zebra": "animal print", "leo": "animal print", "glencheck": "glen check",
        "floral": "floral", "tie dye": "tie-dye", "allover print": "all-over print", "colour blocking": "colour blocking",
        "colorblocking": "colour blocking", "colorblock": "colour blocking", "argyle": "argyle",
        "vichy": "gingham", "gingham": "gingham", "tartan": "tartan", "fair isle": "fair isle",
    },
    "de": {
        "streifen": "stripes", "gestreift": "stripes", "ringel": "stripes", "geringelt": "stripes",
        "nadelstreifen": "pinstripes", "punkte": "dots", "pünktchen": "dots", "gepunktet": "dots",
        "tupfen": "dots", "getupft": "dots", "karo": "checks", "karos": "checks", "kariert": "checks",
        "hahnentritt": "houndstooth", "geblümt": "floral", "blümchen": "floral", "leoparden": "animal print",
        "schlangen": "animal print", "tarn": "camouflage", "meliert": "melange", "batik": "tie-dye",
        "zopf": "cable knit", "norweger": "nordic pattern", "fischgrat": "herringbone", "rauten": "argyle",
        "allover": "all-over print",
    },
    "en": {
        "stripes": "stripes", "striped": "stripes", "stripe": "stripes", "pinstripe": "pinstripes",
        "pinstripes": "pinstripes", "polka dots": "dots", "dots": "dots", "dotted": "dots", "spotted": "dots",
        "checks": "checks", "checked": "checks", "checkered": "checks", "plaid": "checks",
        "houndstooth": "houndstooth", "snake print": "animal print", "heathered": "melange", "marl": "melange",
        "cable knit": "cable knit", "herringbone": "herringbone", "all over print": "all-over print",
        "color blocking": "colour blocking",
    },
}

# How a pattern reads in front of the detail it decorates ("Streifenbündchen" -> "striped cuffs").
PATTERN_MODIFIER = {
    "stripes": "striped", "pinstripes": "pinstriped", "dots": "dotted", "checks": "checked",
    "animal print": "animal", "all-over print": "all-over", "colour blocking": "colour-block",
}

# Motifs: (standalone phrase, form in front of a print or embroidery, pattern it implies or None).
MOTIFS: dict[str, dict[str, tuple[str, str, str | None]]] = {
    "both": {
        "dino": ("dinosaurs", "dino", None), "dinos": ("dinosaurs", "dino", None), "logo": ("logo", "logo", None),
        "slogan": ("slogan", "slogan", None), "comic": ("comic motif", "comic", None),
        "cartoon": ("cartoon motif", "cartoon", None), "einhorn": ("unicorn", "unicorn", None),
        "tropical": ("tropical motif", "tropical", None), "rose": ("roses", "rose", None),
    },
    "de": {
        "blume": ("floral", "floral", "floral"), "blumen": ("floral", "floral", "floral"),
        "blüten": ("floral", "floral", "floral"), "dinosaurier": ("dinosaurs", "dinosaur", None),
        "einhörner": ("unicorns", "unicorn", None), "herz": ("hearts", "heart", None),
        "herzen": ("hearts", "heart", None), "herzchen": ("hearts", "heart", None), "stern": ("stars", "star", None),
        "sterne": ("stars", "star", None), "sternchen": ("stars", "star", None), "tier": ("animals", "animal", None),
        "tiere": ("animals", "animal", None), "katze": ("cats", "cat", None), "hund": ("dogs", "dog", None),
        "hunde": ("dogs", "dog", None), "pferd": ("horses", "horse", None), "pferde": ("horses", "horse", None),
        "bär": ("bears", "bear", None), "bären": ("bears", "bear", None), "hase": ("bunnies", "bunny", None),
        "fuchs": ("foxes", "fox", None), "füchse": ("foxes", "fox", None), "auto": ("cars", "car", None),
        "bagger": ("diggers", "digger", None), "feuerwehr": ("fire engines", "fire engine", None),
        "rakete": ("rockets", "rocket", None), "weltraum": ("space motif", "space", None),
        "meerjungfrau": ("mermaid", "mermaid", None), "regenbogen": ("rainbow", "rainbow", None),
        "palme": ("palm trees", "palm tree", None), "frucht": ("fruit", "fruit", None),
        "früchte": ("fruit", "fruit", None), "kirsche": ("cherries", "cherry", None),
        "erdbeere": ("strawberries", "strawberry", None), "schmetterling": ("butterflies", "butterfly", None),
        "totenkopf": ("skull", "skull", None), "fußball": ("football", "football", None),
        "foto": ("photo", "photo", None), "schrift": ("lettering", "lettering", None),
        "text": ("lettering", "text", None), "rosen": ("roses", "rose", None),
    },
    "en": {
        "flower": ("floral", "flower", "floral"), "flowers": ("floral", "flower", "floral"),
        "dinosaur": ("dinosaurs", "dinosaur", None), "dinosaurs": ("dinosaurs", "dinosaur", None),
        "unicorn": ("unicorn", "unicorn", None), "unicorns": ("unicorns", "unicorn", None),
        "heart": ("hearts", "heart", None), "hearts": ("hearts", "heart", None), "star": ("stars", "star", None),
        "stars": ("stars", "star", None), "animal": ("animals", "animal", None), "animals": ("animals", "animal", None),
        "cat": ("cats", "cat", None), "cats": ("cats", "cat", None), "dog": ("dogs", "dog", None),
        "dogs": ("dogs", "dog", None), "bear": ("bears", "bear", None), "bunny": ("bunnies", "bunny", None),
        "fox": ("foxes", "fox", None), "car": ("cars", "car", None), "cars": ("cars", "car", None),
        "rainbow": ("rainbow", "rainbow", None), "palm": ("palm trees", "palm", None),
        "butterfly": ("butterflies", "butterfly", None), "skull": ("skull", "skull", None),
        "graphic": ("graphic", "graphic", None), "roses": ("roses", "rose", None),
    },
}

# Decorations: (standalone phrase, form in front of another noun, implies its motif's pattern).
DECORATIONS: dict[str, dict[str, tuple[str, str, bool]]] = {
    "both": {
        "print": ("print", "print", True), "prints": ("print", "print", True), "patch": ("patch", "patch", False),
        "patches": ("patches", "patch", False), "badge": ("badge", "badge", False),
        "applikation": ("appliqué", "appliqué", False), "details": ("details", "detail", False),
        "detail": ("details", "detail", False),
    },
    "de": {
        "aufdruck": ("print", "print", True), "druck": ("print", "print", True), "motiv": ("motif", "motif", True),
        "motive": ("motifs", "motif", True), "stickerei": ("embroidery", "embroidery", False),
        "stickereien": ("embroidery", "embroidery", False), "lochstickerei": ("eyelet embroidery", "eyelet", False),
        "applikationen": ("appliqués", "appliqué", False), "aufnäher": ("patches", "patch", False),
        "pailletten": ("sequins", "sequin", False), "wendepailletten": ("reversible sequins", "sequin", False),
        "strasssteine": ("rhinestones", "rhinestone", False), "nieten": ("studs", "stud", False),
        "perlen": ("beads", "bead", False), "rüschen": ("ruffles", "ruffle", False), "volant": ("flounce", "flounce", False),
        "volants": ("flounces", "flounce", False), "schriftzug": ("lettering", "lettering", False),
        "fransen": ("fringe", "fringe", False), "quasten": ("tassels", "tassel", False),
        "schleife": ("bow", "bow", False), "schleifen": ("bows", "bow", False),
        "flockprint": ("flock print", "flock print", True), "biesen": ("pintucks", "pintuck", False),
        "raffung": ("ruching", "ruched", False), "glitzer": ("glitter", "glitter", False),
    },
    "en": {
        "embroidery": ("embroidery", "embroidery", False), "appliqué": ("appliqué", "appliqué", False),
        "applique": ("appliqué", "appliqué", False), "motif": ("motif", "motif", True),
        "sequins": ("sequins", "sequin", False), "rhinestones": ("rhinestones", "rhinestone", False),
        "studs": ("studs", "stud", False), "beads": ("beads", "bead", False), "ruffles": ("ruffles", "ruffle", False),
        "ruffle": ("ruffles", "ruffle", False), "flounce": ("flounce", "flounce", False),
        "lettering": ("lettering", "lettering", False), "fringe": ("fringe", "fringe", False),
        "tassels": ("tassels", "tassel", False), "bow": ("bow", "bow", False), "glitter": ("glitter", "glitter", False),
    },
}

# Garment parts: (standalone phrase, form in front of another noun). "tasche" may also be a bag.
PARTS: dict[str, dict[str, tuple[str, str]]] = {
    "both": {
        "zipper": ("zip", "zip"), "cargo": ("cargo pockets", "cargo"), "button down kragen": ("button-down collar", "button-down"),
        "raglan": ("raglan sleeves", "raglan"),
    },
    "de": {
        "ärmel": ("sleeves", "sleeve"), "ärmeln": ("sleeves", "sleeve"), "kurzarm": ("short sleeves", "short-sleeve"),
        "kurzärmelig": ("short sleeves", "short-sleeve"), "kurzärmlig": ("short sleeves", "short-sleeve"),
        "langarm": ("long sleeves", "long-sleeve"), "langärmelig": ("long sleeves", "long-sleeve"),
        "langärmlig": ("long sleeves", "long-sleeve"), "dreiviertelarm": ("three-quarter sleeves", "three-quarter-sleeve"),
        "dreiviertelärmel": ("three-quarter sleeves", "three-quarter-sleeve"), "puffärmel": ("puff sleeves", "puff-sleeve"),
        "flügelärmel": ("flutter sleeves", "flutter-sleeve"), "fledermausärmel": ("batwing sleeves", "batwing"),
        "ärmellos": ("sleeveless", "sleeveless"), "kragen": ("collar", "collar"), "kentkragen": ("kent collar", "kent collar"),
        "stehkragen": ("stand-up collar", "stand-up collar"), "rollkragen": ("turtleneck", "turtleneck"),
        "reverskragen": ("lapel collar", "lapel collar"), "bubikragen": ("peter pan collar", "peter pan collar"),
        "schalkragen": ("shawl collar", "shawl collar"), "hemdkragen": ("shirt collar", "shirt collar"),
        "polokragen": ("polo collar", "polo collar"), "kapuze": ("hood", "hood"), "kapuzen": ("hood", "hood"),
        "ausschnitt": ("neckline", "neckline"), "rundhalsausschnitt": ("crew neck", "crew-neck"),
        "rundhals": ("crew neck", "crew-neck"), "v ausschnitt": ("v-neck", "v-neck"),
        "u boot ausschnitt": ("boat neck", "boat-neck"), "carmenausschnitt": ("off-shoulder neckline", "off-shoulder"),
        "herzausschnitt": ("sweetheart neckline", "sweetheart"), "tasche": ("pocket", "pocket"),
        "taschen": ("pockets", "pocket"), "eingrifftaschen": ("slip pockets", "slip pocket"),
        "pattentaschen": ("flap pockets", "flap pocket"), "kängurutasche": ("kangaroo pocket", "kangaroo pocket"),
        "leistentaschen": ("welt pockets", "welt pocket"), "knopfleiste": ("button placket", "button placket"),
        "knopf": ("button", "button"), "knöpfe": ("buttons", "button"), "knöpfen": ("buttons", "button"),
        "druckknopf": ("press studs", "press-stud"), "druckknöpfe": ("press studs", "press-stud"),
        "reißverschluss": ("zip", "zip"), "kordelzug": ("drawstring", "drawstring"), "tunnelzug": ("drawstring", "drawstring"),
        "kordel": ("drawstring", "drawstring"), "gummizug": ("elastic waistband", "elastic"), "bund": ("waistband", "waistband"),
        "bündchen": ("ribbed cuffs", "cuff"), "rippbündchen": ("ribbed cuffs", "cuff"), "manschetten": ("cuffs", "cuff"),
        "saum": ("hem", "hem"), "schlitz": ("slit", "slit"), "gürtelschlaufen": ("belt loops", "belt loop"),
        "träger": ("straps", "strap"), "spaghettiträger": ("spaghetti straps", "spaghetti-strap"),
        "schnürung": ("lace-up", "lace-up"), "schnürsenkel": ("laces", "lace"), "sohle": ("sole", "sole"),
        "plateausohle": ("platform sole", "platform"), "absatz": ("heel", "heel"), "blockabsatz": ("block heel", "block heel"),
        "keilabsatz": ("wedge heel", "wedge"), "riemen": ("strap", "strap"), "henkel": ("handles", "handle"),
        "futter": ("lining", "lining"), "knoten": ("knot", "knot"), "schulterpolster": ("shoulder pads", "shoulder pad"),
        "ösen": ("eyelets", "eyelet"), "falten": ("pleats", "pleat"), "rückenausschnitt": ("open back", "open-back"),
        "besatz": ("trim", "trim"), "paspel": ("piping", "piping"), "kontrastnähte": ("contrast stitching", "contrast-stitch"),
        "bommel": ("pompom", "pompom"), "klettverschluss": ("hook-and-loop fastening", "hook-and-loop"),
        "verschluss": ("fastening", "fastening"), "schnalle": ("buckle", "buckle"), "kapuzenkordel": ("drawstring", "drawstring"),
    },
    "en": {
        "sleeve": ("sleeves", "sleeve"), "sleeves": ("sleeves", "sleeve"), "sleeveless": ("sleeveless", "sleeveless"),
        "collar": ("collar", "collar"), "kent collar": ("kent collar", "kent collar"),
        "button down collar": ("button-down collar", "button-down"), "hood": ("hood", "hood"),
        "hooded": ("hood", "hooded"), "neckline": ("neckline", "neckline"), "crew neck": ("crew neck", "crew-neck"),
        "round neck": ("crew neck", "crew-neck"), "v neck": ("v-neck", "v-neck"), "boat neck": ("boat neck", "boat-neck"),
        "turtleneck": ("turtleneck", "turtleneck"), "pocket": ("pocket", "pocket"), "pockets": ("pockets", "pocket"),
        "kangaroo pocket": ("kangaroo pocket", "kangaroo pocket"), "buttons": ("buttons", "button"),
        "button": ("button", "button"), "button placket": ("button placket", "button placket"),
        "zip": ("zip", "zip"), "zipped": ("zip", "zip"), "zip up": ("zip", "zip"), "drawstring": ("drawstring", "drawstring"),
        "waistband": ("waistband", "waistband"), "elastic waistband": ("elastic waistband", "elastic waistband"),
        "cuffs": ("cuffs", "cuff"), "ribbed cuffs": ("ribbed cuffs", "ribbed cuff"), "hem": ("hem", "hem"),
        "slit": ("slit", "slit"), "belt loops": ("belt loops", "belt loop"), "straps": ("straps", "strap"),
        "strap": ("strap", "strap"), "spaghetti straps": ("spaghetti straps", "spaghetti-strap"),
        "lace up": ("lace-up", "lace-up"), "laces": ("laces", "lace"), "sole": ("sole", "sole"),
        "platform sole": ("platform sole", "platform"), "heel": ("heel", "heel"), "block heel": ("block heel", "block heel"),
        "handles": ("handles", "handle"), "lining": ("lining", "lining"), "knot": ("knot", "knot"),
        "shoulder pads": ("shoulder pads", "shoulder pad"), "pleats": ("pleats", "pleat"), "trim": ("trim", "trim"),
        "tie waist": ("tie waist", "tie-waist"), "open back": ("open back", "open-back"), "piping": ("piping", "piping"),
        "press studs": ("press studs", "press-stud"), "snap buttons": ("press studs", "press-stud"),
        "buckle": ("buckle", "buckle"), "pompom": ("pompom", "pompom"), "pom pom": ("pompom", "pompom"),
    },
}

POSITIONS: dict[str, dict[str, str]] = {
    "both": {"front": "front"},
    "de": {"rücken": "back", "brust": "chest", "seiten": "side", "seite": "side", "gesäß": "back",
           "schulter": "shoulder", "innen": "inner", "vorder": "front", "rückseite": "back", "vorderseite": "front",
           "frontal": "front"},
    "en": {"back": "back", "chest": "chest", "side": "side", "shoulder": "shoulder", "inner": "inner"},
}

# Adjectives: (form in front of a noun, standalone detail or None, fit it implies or None).
ADJECTIVES: dict[str, dict[str, tuple[str, str | None, str | None]]] = {
    "both": {
        "mini": ("mini", "mini length", None), "midi": ("midi", "midi length", None), "maxi": ("maxi", "maxi length", None),
        "cropped": ("cropped", "cropped", None), "metallic": ("metallic", "metallic", None),
        "puff": ("puff", None, None), "high waist": ("high-waist", "high waist", None),
        "highwaist": ("high-waist", "high waist", None), "high rise": ("high-rise", "high rise", None),
        "used": ("distressed", "distressed look", None), "destroyed": ("distressed", "distressed look", None),
        "wide leg": ("wide-leg", None, "wide leg"),
    },
    "de": {
        "bestickt": ("embroidered", "embroidered", None), "bedruckt": ("printed", "printed", None),
        "kurz": ("short", None, None), "lang": ("long", None, None), "gerippt": ("ribbed", "ribbed", None),
        "ripp": ("ribbed", "ribbed", None), "gesteppt": ("quilted", "quilted", None), "stepp": ("quilted", "quilted", None),
        "wattiert": ("padded", "padded", None), "gefüttert": ("lined", "lined", None),
        "abnehmbar": ("detachable", None, None), "verstellbar": ("adjustable", None, None),
        "elastisch": ("elastic", None, None), "aufgesetzt": ("patch", None, None), "verdeckt": ("concealed", None, None),
        "kontrast": ("contrast", None, None), "kontrastfarben": ("contrasting", None, None),
        "plissiert": ("pleated", "pleated", None), "plissee": ("pleated", "pleated", None),
        "gerafft": ("ruched", "ruched", None), "glänzend": ("shiny", None, None), "glitzernd": ("glittering", "glitter", None),
        "verschieden": ("various", None, None), "ballon": ("balloon", None, None), "wickel": ("wrap", "wrap style", None),
        "schulterfrei": ("off-shoulder", "off-shoulder", None), "rückenfrei": ("open-back", "open back", None),
        "hochgeschlossen": ("high-neck", "high neck", None), "asymmetrisch": ("asymmetric", "asymmetric cut", None),
        "zweireihig": ("double-breasted", "double-breasted", None), "einreihig": ("single-breasted", "single-breasted", None),
        "weite": ("wide", None, "loose"), "weiten": ("wide", None, "loose"), "weitem": ("wide", None, "loose"),
        "weites": ("wide", None, "loose"), "tailliert": ("fitted", None, "fitted"),
        "figurbetont": ("figure-hugging", None, "figure-hugging"), "locker": ("loose", None, "loose"),
        "lässig": ("relaxed", None, "relaxed fit"), "gerade": ("straight", None, "straight"),
        "enganliegend": ("close-fitting", None, "slim fit"), "gewaschen": ("washed", "washed look", None),
        "zerrissen": ("ripped", "ripped", None), "transparent": ("sheer", "sheer", None),
        "abgesetzt": ("contrasting", None, None), "passend": ("matching", None, None),
    },
    "en": {
        "embroidered": ("embroidered", "embroidered", None), "printed": ("printed", "printed", None),
        "short": ("short", None, None), "long": ("long", None, None), "ribbed": ("ribbed", "ribbed", None),
        "quilted": ("quilted", "quilted", None), "padded": ("padded", "padded", None), "lined": ("lined", "lined", None),
        "detachable": ("detachable", None, None), "adjustable": ("adjustable", None, None),
        "elastic": ("elastic", None, None), "elasticated": ("elastic", None, None), "patch": ("patch", None, None),
        "concealed": ("concealed", None, None), "contrast": ("contrast", None, None),
        "contrasting": ("contrasting", None, None), "pleated": ("pleated", "pleated", None),
        "ruched": ("ruched", "ruched", None), "shiny": ("shiny", None, None), "various": ("various", None, None),
        "balloon": ("balloon", None, None), "wrap": ("wrap", "wrap style", None),
        "off shoulder": ("off-shoulder", "off-shoulder", None), "high neck": ("high-neck", "high neck", None),
        "asymmetric": ("asymmetric", "asymmetric cut", None), "double breasted": ("double-breasted", "double-breasted", None),
        "single breasted": ("single-breasted", "single-breasted", None), "wide": ("wide", None, None),
        "ruffled": ("ruffled", "ruffles", None), "distressed": ("distressed", "distressed look", None),
        "ripped": ("ripped", "ripped", None), "washed": ("washed", "washed look", None), "sheer": ("sheer", "sheer", None),
        "matching": ("matching", None, None), "fitted": ("fitted", None, "fitted"),
        "high waisted": ("high-waist", "high waist", None),
    },
}

FITS: dict[str, dict[str, str]] = {
    "both": {
        "slim fit": "slim fit", "slimfit": "slim fit", "slim": "slim fit", "regular fit": "regular fit",
        "regularfit": "regular fit", "oversized": "oversized", "oversize": "oversized", "loose fit": "loose",
        "relaxed fit": "relaxed fit", "skinny": "skinny", "skinny fit": "skinny", "straight fit": "straight",
        "straight leg": "straight", "bootcut": "bootcut", "flared": "flared", "tapered": "tapered",
        "tapered fit": "tapered", "mom fit": "mom fit", "boyfriend": "boyfriend fit", "comfort fit": "comfort fit",
        "modern fit": "modern fit", "loose": "loose", "relaxed": "relaxed fit", "straight": "straight",
    },
    "de": {"schlag": "flared", "ausgestellt": "flared", "lockere passform": "loose"},
    "en": {},
}

# Words that carry no attribute but belong to compounds ("Baumwollanteil", "Melange-Optik").
FILLERS: dict[str, frozenset[str]] = {
    "both": frozenset({"look", "design", "style", "basic", "basics", "fashion", "trend", "outfit"}),
    "de": frozenset({
        "anteil", "optik", "qualität", "mischung", "stoff", "material", "stil", "form", "schnitt", "passform",
        "farbe", "farben", "farbig", "sommer", "winter", "frühling", "herbst", "übergang", "freizeit", "alltag",
        "mode", "effekt", "waschung", "länge", "teil", "modell", "kollektion", "saison", "abend", "bio", "fein",
        "grob", "gewebe", "qualitäts", "lieblings", "trend", "akzent", "akzente",
    }),
    "en": frozenset({"fabric", "blend", "material", "quality", "cut"}),
}

# "Blumenmuster": the motif before it is a pattern.
PATTERN_HEADS: dict[str, frozenset[str]] = {
    "both": frozenset({"dessin"}),
    "de": frozenset({"muster"}),
    "en": frozenset({"pattern", "patterned"}),
}

