"""What a caption or a comment may hold, and the hashtags and mentions read from it."""

from __future__ import annotations

import re
import unicodedata

from domain.errors import BadUserInput

MAX_CAPTION = 2200
MAX_COMMENT = 2200
MAX_HASHTAGS = 30
HASHTAG_PATTERN = re.compile(r"(?<![\w&])#(\w{1,100})", re.UNICODE)
MENTION_PATTERN = re.compile(r"(?<![\w])@([A-Za-z0-9._]{1,30})")


def parse_hashtags(caption: str) -> list[str]:
    tags = [unicodedata.normalize("NFKC", tag).lower() for tag in HASHTAG_PATTERN.findall(caption)]
    return list(dict.fromkeys(tags))[:MAX_HASHTAGS]


def parse_mentions(caption: str) -> list[str]:
    names = [name.rstrip(".").lower() for name in MENTION_PATTERN.findall(caption)]
    return list(dict.fromkeys(name for name in names if name))


def validate_caption(caption: str) -> str:
    if len(caption) > MAX_CAPTION:
        raise BadUserInput(f"Captions are at most {MAX_CAPTION} characters", field="caption")
    return caption


def validate_comment(body: str) -> str:
    body = body.strip()
    if not body:
        raise BadUserInput("A comment needs some text", field="body")
    if len(body) > MAX_COMMENT:
        raise BadUserInput(f"Comments are at most {MAX_COMMENT} characters", field="body")
    return body
