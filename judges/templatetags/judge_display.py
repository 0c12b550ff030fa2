"""How a judge's model is named on the pages: its name, and where it is loaded from on hover,
never a local absolute path (it says nothing to a reader and tells them about the server)."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import urlsplit

from django import template

register = template.Library()


def _is_local_path(ref: str) -> bool:
    return ref.startswith(("/", "~", "./", "../")) or PureWindowsPath(ref).drive != ""


def _parts(ref: str) -> tuple[str, ...]:
    return PureWindowsPath(ref).parts if PureWindowsPath(ref).drive else PurePosixPath(ref).parts


@register.filter
def model_name(judge: object) -> str:
    """The model's name: the GGUF file without its extension, a local directory's last part, a
    hub id or a server's model name as it is."""
    ref = str(getattr(judge, "model_ref", "") or "")
    gguf = str(getattr(judge, "gguf_file", "") or "")
    if gguf:
        name = _parts(gguf)[-1] if _parts(gguf) else gguf
        return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name
    if _is_local_path(ref):
        parts = [p for p in _parts(ref) if p not in ("/", "\\")]
        return parts[-1] if parts else "local model"
    return ref or "—"


@register.filter
def model_source(judge: object) -> str:
    """Where the model is loaded from, in words: an installed package, a local directory (by its
    name only), a hub id from the local cache, or a server's host."""
    backend = str(getattr(judge, "backend", ""))
    ref = str(getattr(judge, "model_ref", "") or "")
    if backend == "openai":
        host = urlsplit(str(getattr(judge, "base_url", "") or "")).netloc or "the configured server"
        return f"served by an OpenAI-compatible server at {host}"
    kind = "GGUF file" if getattr(judge, "gguf_file", "") else "model"
    if _is_local_path(ref):
        parts = _parts(ref)
        if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
            return f"{kind} in the installed Python package {parts[parts.index('site-packages') + 1]}"
        return f"{kind} in a local directory named {model_name(judge) if kind == 'model' else parts[-1]}"
    return f"Hugging Face hub id {ref}, from the local cache"
