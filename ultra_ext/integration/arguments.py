"""The training arguments ultra_ext adds (``distill_loss``, ``distill_tau``, ``det_loss``): accepted, never injected.

Ultralytics refuses any argument its defaults lack (``ultralytics.cfg.check_dict_alignment``, called by
``get_cfg`` for every trainer and by the CLI). Putting ours into the defaults would write them into every run's
arguments, so into every checkpoint's ``train_args`` and every DDP worker's pickled state, and a machine without
ultra_ext could then not resume even a stock model's run. Instead :func:`install` wraps the alignment check to accept
them: a run's arguments hold them only when the user sets them, and the callbacks read them with :func:`value`.
"""

from __future__ import annotations

__all__ = ["EXTRA_ARGS", "install", "uninstall", "value"]

# name -> default (what the callbacks assume when a run's arguments do not mention it)
EXTRA_ARGS = {"distill_loss": "sl2", "distill_tau": 1.0, "det_loss": "ultralytics"}
STOCK_ALLOWED = frozenset({"augmentations", "save_dir"})  # Ultralytics' own default for allowed_custom_keys
_saved: dict = {}


def value(args, key: str):
    """``args.<key>`` of a trainer's arguments, or our default when the run did not set it."""
    found = getattr(args, key, None)
    return EXTRA_ARGS[key] if found is None else found


def wrap_check_dict_alignment(stock):
    """``check_dict_alignment`` that also allows our argument names in run arguments (dicts with ``imgsz``; the
    settings file, checked by the same function, gets no new keys)."""

    def check_dict_alignment(base, custom, e=None, allowed_custom_keys=None):
        if "imgsz" in base:
            allowed_custom_keys = set(STOCK_ALLOWED if allowed_custom_keys is None else allowed_custom_keys)
            allowed_custom_keys |= EXTRA_ARGS.keys()
        return stock(base, custom, e, allowed_custom_keys)

    check_dict_alignment.__wrapped__ = stock
    check_dict_alignment.__doc__ = stock.__doc__
    return check_dict_alignment


def install() -> None:
    import ultralytics.cfg as cfg

    if "check_dict_alignment" not in _saved:
        _saved["check_dict_alignment"] = cfg.check_dict_alignment
        cfg.check_dict_alignment = wrap_check_dict_alignment(cfg.check_dict_alignment)


def uninstall() -> None:
    if "check_dict_alignment" in _saved:
        import ultralytics.cfg as cfg

        cfg.check_dict_alignment = _saved.pop("check_dict_alignment")
