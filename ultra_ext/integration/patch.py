"""The guarded parse_model patch: one dispatch branch for modules that follow the ul_parse protocol.

The installed ``ultralytics.nn.tasks.parse_model`` is re-compiled from its own source with exactly one change::

    if hasattr(m, "ul_parse"):                                   # added
        args, c2, n, legacy = _ultra_ext_parse_row(m, locals())  # added
    elif m in base_modules:                                      # every stock branch, byte-identical
        ...

Line numbers and the filename are kept, so tracebacks still point into Ultralytics' file. When the source does
not look as expected (unreadable, anchor missing or duplicated, locals renamed) :class:`UltralyticsIncompatibleError`
is raised naming the Ultralytics version: never a silent fallback that would misbuild our models.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap

from .protocol import LayerError, ParseContext

__all__ = ["HOOK_NAME", "UltralyticsIncompatibleError", "build_patched_parse_model", "check_semantics", "parse_row"]

HOOK_NAME = "_ultra_ext_parse_row"
REQUIRED_LOCALS = ("m", "f", "n", "args", "c2", "ch", "legacy", "i", "d", "layers")
_BRANCH = f"""
if hasattr(m, "ul_parse"):
    args, c2, n, legacy = {HOOK_NAME}(m, locals())
else:
    pass
"""


class UltralyticsIncompatibleError(RuntimeError):
    """The installed Ultralytics' parse_model is not one ultra_ext knows how to extend."""


def _version() -> str:
    try:
        import ultralytics

        return ultralytics.__version__
    except Exception:
        return "unknown"


def supported_range() -> str:
    """The Ultralytics requirement of the installed ultra-ext distribution, e.g. ``ultralytics<8.5,>=8.4.164``."""
    try:
        from importlib.metadata import requires

        for req in requires("ultra-ext") or []:
            if req.replace(" ", "").startswith("ultralytics") and "extra" not in req:
                return req.replace(" ", "")
    except Exception:  # not installed as a distribution (a source checkout on sys.path)
        pass
    return "the range `pip show ultra-ext` lists"


def _incompatible(reason: str) -> UltralyticsIncompatibleError:
    return UltralyticsIncompatibleError(
        f"ultra_ext cannot extend parse_model of ultralytics {_version()}: {reason}. Install a supported "
        f"version ({supported_range()}), or set ULTRA_EXT_DISABLE=1 to run stock Ultralytics."
    )


def _is_anchor(node: ast.AST) -> bool:
    """``if m in base_modules:``."""
    t = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(t, ast.Compare)
        and isinstance(t.left, ast.Name)
        and t.left.id == "m"
        and len(t.ops) == 1
        and isinstance(t.ops[0], ast.In)
        and isinstance(t.comparators[0], ast.Name)
        and t.comparators[0].id == "base_modules"
    )


def _replace_in_parent(root: ast.AST, old: ast.stmt, new: ast.stmt) -> None:
    for parent in ast.walk(root):
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(parent, field, None)
            if isinstance(stmts, list) and old in stmts:
                stmts[stmts.index(old)] = new
                return
    raise _incompatible("the dispatch anchor has no enclosing statement list")


def patch_source(source: str, first_line: int, filename: str):
    """Return the compiled module code of ``source`` (one function) with the protocol branch inserted."""
    return patch_tree(ast.parse(textwrap.dedent(source)), first_line, filename)


def patch_tree(tree: ast.Module, first_line: int, filename: str):
    """:func:`patch_source` on an already parsed ``tree`` (modified in place)."""
    fn = tree.body[0] if tree.body else None
    if not isinstance(fn, ast.FunctionDef) or fn.name != "parse_model":
        raise _incompatible("parse_model is not a plain function")
    assigned = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assigned |= {a.arg for a in fn.args.args}
    missing = [name for name in REQUIRED_LOCALS if name not in assigned]
    if missing:
        raise _incompatible(f"its locals {missing} are gone")
    anchors = [node for node in ast.walk(fn) if _is_anchor(node)]
    if len(anchors) != 1:
        raise _incompatible(f"expected exactly one 'if m in base_modules:' dispatch, found {len(anchors)}")
    anchor = anchors[0]
    branch = ast.parse(_BRANCH).body[0]
    for node in ast.walk(branch):  # the new lines borrow the anchor's line number
        if hasattr(node, "lineno"):
            node.lineno = node.end_lineno = anchor.lineno
            node.col_offset, node.end_col_offset = anchor.col_offset, anchor.col_offset
    branch.orelse = [anchor]
    _replace_in_parent(fn, anchor, branch)
    ast.increment_lineno(tree, first_line - 1)
    return compile(tree, filename, "exec")


def build_patched_parse_model(tasks, check_rows):
    """Build the patched parse_model for the ``ultralytics.nn.tasks`` module ``tasks``.

    Args:
        tasks: the imported ``ultralytics.nn.tasks`` module (its dict becomes the function's globals).
        check_rows: ``check_rows(d)`` validation run before parsing (unknown names, missing scale).

    Returns:
        ``(original, patched)``: the function found in ``tasks`` and its replacement.
    """
    original = tasks.parse_model
    target = inspect.unwrap(original)
    try:
        lines, first_line = inspect.getsourcelines(target)
        filename = inspect.getsourcefile(target) or tasks.__file__
    except (OSError, TypeError) as e:
        raise _incompatible(f"its source cannot be read ({e})") from None
    from .selfcheck import fingerprint_tree

    tree = ast.parse(textwrap.dedent("".join(lines)))  # parsed once: fingerprinted, then patched in place
    source_fingerprint = fingerprint_tree(tree)
    code = patch_tree(tree, first_line, filename)

    namespace: dict = {}
    exec(code, tasks.__dict__, namespace)  # globals = tasks' own, as for the original
    compiled = namespace["parse_model"]

    @functools.wraps(target)
    def parse_model(d, ch, verbose=True):
        check_rows(d)
        return compiled(d, ch, verbose)

    parse_model.ultra_ext_patched = True
    parse_model.ultra_ext_fingerprint = source_fingerprint  # selfcheck.KNOWN_FINGERPRINTS: tested sources
    return original, parse_model


def check_semantics(parse_model) -> None:
    """On a parse_model source we have not tested, build the self-check probe (:mod:`.selfcheck`) or refuse."""
    from .selfcheck import KNOWN_FINGERPRINTS, run_self_check

    if parse_model.ultra_ext_fingerprint in KNOWN_FINGERPRINTS:
        return
    problems = run_self_check(parse_model)
    if problems:
        raise _incompatible(
            f"its parse_model source is one ultra_ext was not tested on, and the self-check probe builds differently "
            f"({'; '.join(problems)})"
        )


def parse_row(m, frame_locals: dict):
    """The hook the patched branch calls: run ``m.ul_parse`` and check what it returns."""
    ctx = ParseContext.from_locals(frame_locals)
    try:
        out = m.ul_parse(ctx)
    except LayerError:
        raise
    except (ValueError, TypeError) as e:  # a module's own argument check, shared with its constructor
        raise ctx.error(str(e)) from None
    except Exception as e:  # a bug surfacing deep inside: still name the layer
        raise ctx.error(f"{type(e).__name__}: {e}") from e
    if not isinstance(out, dict) or "args" not in out or "c2" not in out:
        raise ctx.error(f"{m.__name__}.ul_parse must return a dict with 'args' and 'c2', got {out!r}")
    n = out.get("n", ctx.n)
    if not isinstance(n, int) or n < 1:
        raise ctx.error(f"repeats must be an integer >= 1, got {n!r}")
    return list(out["args"]), out["c2"], n, out.get("legacy", ctx.legacy)
