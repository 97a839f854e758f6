from behavior.models import ApiKey


def api_key_create(*, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Make a key; the raw key is returned once and never stored."""
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if not scopes or unknown:
        raise ValueError(f"scopes must be some of {', '.join(ApiKey.Scope.values)}; got {', '.join(scopes) or 'none'}")
    raw = ApiKey.generate()
    key = ApiKey.objects.create(name=name, scopes=sorted(set(scopes)), prefix=raw[:10], key_hash=ApiKey.hash(raw))
    return key, raw
