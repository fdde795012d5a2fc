"""What a username, an email, a password and a profile may be."""

from __future__ import annotations

import re

from domain.errors import BadUserInput

# Instagram's rules: letters, digits, periods and underscores, at most 30 characters,
# and no period at either end or twice in a row.
MAX_USERNAME_LENGTH = 30
USERNAME_PATTERN = re.compile(r"^(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9._]{1,30}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
MAX_FULL_NAME = 64
MAX_BIO = 150
MAX_WEBSITE = 200
WEBSITE_PATTERN = re.compile(r"^https?://[^\s]+$")


def could_be_username(text: str) -> bool:
    # fullmatch: "$" alone also matches before a trailing newline ("ana\n").
    return USERNAME_PATTERN.fullmatch(text) is not None


def validate_username(username: str) -> str:
    if not could_be_username(username):
        raise BadUserInput(
            "Usernames are 1-30 letters, digits, '.' and '_', and cannot start or end with "
            "'.' or contain '..'",
            field="username",
        )
    return username


def validate_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL_PATTERN.match(email):
        raise BadUserInput(f"{email!r} is not an email address", field="email")
    return email


def validate_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise BadUserInput(
            f"Passwords are {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            field="password",
        )


def validate_search_prefix(prefix: str) -> str:
    prefix_lower = prefix.strip().lower()
    if not prefix_lower:
        raise BadUserInput("prefix must not be empty", field="prefix")
    if len(prefix_lower) > MAX_USERNAME_LENGTH:
        raise BadUserInput(
            f"Usernames have at most {MAX_USERNAME_LENGTH} characters", field="prefix"
        )
    return prefix_lower


def profile_changes(
    *,
    full_name: str | None,
    bio: str | None,
    website: str | None,
    is_private: bool | None,
) -> dict[str, object]:
    """The columns a profile update sets; at least one, each within its limit."""
    values: dict[str, object] = {}
    for field, value, limit in (
        ("full_name", full_name, MAX_FULL_NAME),
        ("bio", bio, MAX_BIO),
        ("website", website, MAX_WEBSITE),
    ):
        if value is None:
            continue
        if len(value) > limit:
            raise BadUserInput(f"{field} is at most {limit} characters", field=field)
        values[field] = value
    if website and not WEBSITE_PATTERN.fullmatch(website):
        raise BadUserInput("website must be an http:// or https:// URL", field="website")
    if is_private is not None:
        values["is_private"] = is_private
    if not values:
        raise BadUserInput("Nothing to update")
    return values
