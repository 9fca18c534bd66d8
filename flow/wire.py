"""The form in which a pool worker's result (`flow.pool.Enriched`) travels to the writer: columns, rebuilt by C loops.

Why: the writer process unpickles every batch the workers enrich, on the one process that limits an import. Pickled
as plain objects, an item cost the writer ~161,000 instructions to unpickle (callgrind, 10,000 real items): pydantic's
Python-level `__setstate__` for the item and its engagement, enrichment and reply models, with a state dict each;
UTF-8 decoding of its Chinese title, content and index texts (~28 instructions a character); every Prepared's and
Hits' slots set one by one. Here the models are made and filled by `map` over one column per field (`object.__new__`
and the slot descriptors: no Python frame per item), the long texts travel as UTF-16 (~12 instructions a character)
and the prepared facts as their type's own columns (`to_columns`/`from_columns`, see `analysis.stages.Prepared`, which
leaves out what the writer never reads). Unpickling fell to ~113,000 instructions an item, and the worker's pickling
from ~175,000 to ~112,000. The items rebuilt equal the ones sent, field for field, with the same sets of fields set.

Anything this form cannot carry exactly (a model with extra fields or private attributes or its fields out of order,
a text with a lone surrogate, which strict UTF-16 cannot encode) travels as before, pickled plainly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

from pydantic import BaseModel

from core.models import MODEL_SLOT_SETTERS, Engagement, Enrichment, Item, Reply

_new = object.__new__
_SLOTS = MODEL_SLOT_SETTERS  # BaseModel's slots set through their descriptors
_consume = deque(maxlen=0).extend  # runs a map to its end, keeping nothing
_fields = attrgetter("__dict__")  # a model's field dict, read without pydantic's __getattr__ hook
_UTF16 = "utf-16"  # one of the codecs CPython decodes without a registry look-up (not "utf-16-le")

# Item fields that are models of their own, and the long texts sent as UTF-16, by name.
_MODELS: tuple[tuple[str, type[BaseModel]], ...] = (("engagement", Engagement), ("enrichment", Enrichment))
_TEXTS = ("title", "content")
# An item field that holds a model or None, and that model's long texts (the reply of a government board's message).
_OPTIONAL = ("reply", Reply, ("text",))


class NotPackable(Exception):
    """What the columns cannot carry exactly: the batch is pickled plainly instead."""


def _fields_sets(models: Sequence[BaseModel]) -> list[frozenset[str]]:
    """Each model's set of fields set, as one shared frozenset per distinct set (the pickle sends each once)."""
    interned: dict[frozenset[str], frozenset[str]] = {}
    out = []
    for model in models:
        if model.__pydantic_extra__ is not None or model.__pydantic_private__ is not None:
            raise NotPackable
        fields_set = frozenset(model.__pydantic_fields_set__)
        out.append(interned.setdefault(fields_set, fields_set))
    return out


def _columns(models: Sequence[BaseModel], cls: type[BaseModel]) -> list[list[Any]]:
    """The models' field values, one list per field, in the model's field order. Raises NotPackable."""
    fields = tuple(cls.model_fields)
    if any(type(m) is not cls or tuple(m.__dict__) != fields for m in models):
        raise NotPackable
    if not models:
        return [[] for _ in fields]
    return [list(column) for column in zip(*map(dict.values, map(_fields, models)), strict=True)]


def _models(cls: type[BaseModel], columns: Sequence[Iterable[Any]], fields_sets: list[frozenset[str]]
            ) -> list[BaseModel]:
    """Models of `cls` made as pydantic's `__setstate__` makes them (a field dict, a fresh set of the fields set, no
    extra, no private), by C loops."""
    count = len(fields_sets)
    models = list(map(_new, repeat(cls, count)))
    _consume(map(_SLOTS["__dict__"], models,
                 map(dict, map(zip, repeat(tuple(cls.model_fields)), zip(*columns, strict=True)))))
    _consume(map(_SLOTS["__pydantic_fields_set__"], models, map(set, fields_sets)))
    _consume(map(_SLOTS["__pydantic_extra__"], models, repeat(None, count)))
    _consume(map(_SLOTS["__pydantic_private__"], models, repeat(None, count)))
    return models


def _utf16(texts: Iterable[str]) -> list[bytes]:
    try:
        return [text.encode(_UTF16) for text in texts]
    except UnicodeEncodeError:  # a lone surrogate
        raise NotPackable from None


def _decoded(column: list[bytes]) -> list[str]:
    return list(map(str, column, repeat(_UTF16)))


def pack_items(items: Sequence[Item]) -> tuple:
    """The items as columns, one per field, the nested models' as columns of their own, the long texts in UTF-16;
    each model's fields set. Raises NotPackable."""
    columns: list[Any] = _columns(items, Item)
    fields = list(Item.model_fields)
    for name, cls in _MODELS:
        at = fields.index(name)
        columns[at] = (_columns(columns[at], cls), _fields_sets(columns[at]))
    for name in _TEXTS:
        at = fields.index(name)
        columns[at] = _utf16(columns[at])
    name, cls, texts = _OPTIONAL
    at = fields.index(name)
    columns[at] = _pack_optional(columns[at], cls, texts)
    return columns, _fields_sets(items)


def _pack_optional(models: list[BaseModel | None], cls: type[BaseModel], texts: tuple[str, ...]) -> tuple:
    """A column of models or None: where the models are, their columns (`texts` in UTF-16) and fields sets."""
    present = [i for i, model in enumerate(models) if model is not None]
    there = [models[i] for i in present]
    columns = _columns(there, cls)
    fields = list(cls.model_fields)
    for name in texts:
        columns[fields.index(name)] = _utf16(columns[fields.index(name)])
    return present, columns, _fields_sets(there)


def _unpack_optional(count: int, cls: type[BaseModel], texts: tuple[str, ...], present: list[int],
                     columns: list[Any], fields_sets: list[frozenset[str]]) -> list[BaseModel | None]:
    fields = list(cls.model_fields)
    for name in texts:
        columns[fields.index(name)] = _decoded(columns[fields.index(name)])
    models = _models(cls, columns, fields_sets)
    return models if len(present) == count else _spread(count, present, models)


def _spread(count: int, present: Sequence[int], values: Sequence[Any]) -> list[Any]:
    """`count` slots, None but at the `present` positions, which hold `values` in order."""
    out: list[Any] = [None] * count
    for i, value in zip(present, values, strict=True):
        out[i] = value
    return out


def unpack_items(columns: list[Any], fields_sets: list[frozenset[str]]) -> list[Item]:
    fields = list(Item.model_fields)
    for name, cls in _MODELS:
        at = fields.index(name)
        columns[at] = _models(cls, *columns[at])
    for name in _TEXTS:
        at = fields.index(name)
        columns[at] = _decoded(columns[at])
    name, cls, texts = _OPTIONAL
    at = fields.index(name)
    columns[at] = _unpack_optional(len(fields_sets), cls, texts, *columns[at])
    return _models(Item, columns, fields_sets)


def pack_index_texts(texts: Sequence[tuple[str, str] | None]) -> tuple:
    """Index texts (title, content, or None) as two UTF-16 columns of those there are and where they are."""
    present = [i for i, text in enumerate(texts) if text is not None]
    if len(present) == len(texts):
        present = None  # all of them (the usual case)
    kept = texts if present is None else [texts[i] for i in present]
    return present, _utf16(map(itemgetter(0), kept)), _utf16(map(itemgetter(1), kept))


def unpack_index_texts(count: int, present: list[int] | None, titles: list[bytes], contents: list[bytes]
                       ) -> list[tuple[str, str] | None]:
    pairs = list(zip(_decoded(titles), _decoded(contents), strict=True))
    return pairs if present is None else _spread(count, present, pairs)


def pack_prepared(items: Sequence[Item], prepared: Sequence[Any]) -> tuple[Callable[..., list[Any]] | None, Any]:
    """What the stages prepared for the items: none, or as their type's columns (`to_columns`, rebuilt with the
    items by `from_columns`), which leave out the item each holds (it travels as the items do)."""
    if all(p is None for p in prepared):
        return None, len(prepared)
    kind = type(prepared[0])
    to_columns = getattr(kind, "to_columns", None)
    if to_columns is None or any(type(p) is not kind or p.item is not item
                                 for p, item in zip(prepared, items, strict=True)):
        raise NotPackable
    return kind.from_columns, to_columns(prepared)


def unpack_prepared(items: list[Item], rebuild: Callable[..., list[Any]] | None, packed: Any) -> list[Any]:
    return [None] * packed if rebuild is None else rebuild(items, packed)
