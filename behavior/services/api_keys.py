from behavior.models import ApiKey


def api_key_create(*, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Make a key; the raw key is returned once and never stored (its token secret is on the key)."""
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if not scopes or unknown:
        raise ValueError(f"scopes must be some of {', '.join(ApiKey.Scope.values)}; got {', '.join(scopes) or 'none'}")
    raw = ApiKey.generate()
    key = ApiKey.objects.create(name=name, scopes=sorted(set(scopes)), prefix=raw[:10], key_hash=ApiKey.hash(raw),
                                token_secret=ApiKey.generate_token_secret())
    return key, raw


def api_key_token_secret_rotate(*, key: ApiKey) -> str:
    """Give the key a new token secret: tokens signed with the old one stop working (in other processes once
    their cached copy of the key expires, FORESIGHT_API_KEY_CACHE_SECONDS)."""
    key.token_secret = ApiKey.generate_token_secret()
    key.save(update_fields=["token_secret"])
    return key.token_secret
