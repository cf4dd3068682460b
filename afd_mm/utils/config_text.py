"""Config text read as data, never executed.

mmengine stores a run's config in its checkpoints as Python text
(``meta['cfg']``, ``Config.pretty_text``): ``key = dict(a=1, b=[2, 3])``
lines. ``Config.fromstring`` would run that text, so anything a
checkpoint's author wrote into it would run on the reader's machine.
:func:`config_from_text` parses it with :mod:`ast` and accepts only what
``pretty_text`` writes: top-level assignments of literals (numbers,
strings, bytes, ``True``/``False``/``None``), lists, tuples, sets, dict
displays and ``dict(key=value, ...)`` calls. Nothing is imported, called
or evaluated.
"""
import ast

from mmengine.config import Config


def config_from_text(text: str, source: str) -> Config:
    """The ``Config`` that ``text`` describes, parsed as data only.

    Args:
        text: Python config text, as mmengine's ``Config.pretty_text``.
        source: where the text came from (e.g. ``"meta['cfg'] of x.pth"``),
            named in errors.

    Raises:
        ValueError: the text is not plain data (a call other than
            ``dict(...)``, an import, a name, an expression...); the
            message names the line.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise ValueError(f'{source} is not valid config text: {err}') \
            from None
    out = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            _refuse(node, source, 'only `name = value` lines are data')
        out[node.targets[0].id] = _value(node.value, source)
    return Config(out)


def _value(node: ast.AST, source: str):
    """The Python value of a literal / container / ``dict(...)`` node."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_value(item, source) for item in node.elts]
        kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
        return kind(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            _refuse(node, source, '`**` unpacking is not data')
        return {_value(k, source): _value(v, source)
                for k, v in zip(node.keys, node.values)}
    if (isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float, complex))):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and not node.args
            and all(kw.arg is not None for kw in node.keywords)):
        return {kw.arg: _value(kw.value, source) for kw in node.keywords}
    _refuse(node, source, 'only literals, lists, tuples and dicts are data')


def _refuse(node: ast.AST, source: str, why: str):
    code = ast.unparse(node)
    code = code if len(code) <= 80 else code[:77] + '...'
    raise ValueError(
        f'{source}, line {node.lineno}: `{code}` is not plain data ({why}); '
        'config text from a file is read as data and never executed.')
