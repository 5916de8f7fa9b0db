"""Conversations (seed 001): a shopper describes an outfit, asks for changes in words, and gets the
catalog's most similar products, turn after turn.

`store` keeps the sessions and their numbered turns (SQLite embedded, Redis shared); `understand`
reads a message as generate, edit or recommend, from the phrasings in `phrasings`.
"""

from fashion_studio.sessions.store import Session, SessionStore, Turn, open_store, store_from_settings
from fashion_studio.sessions.understand import Understanding, message_language, understand

__all__ = ["Session", "SessionStore", "Turn", "Understanding", "message_language", "open_store", "store_from_settings", "understand"]
