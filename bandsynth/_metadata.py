"""Metadata of images and stacks: deep copies, read-only dicts, and headers made fit for a new pixel grid.

A `~bandsynth.BandStack` is immutable: its metadata is copied when it is built (the caller's
later edits do not reach it) and its dicts refuse changes at every level.  Such a dict is still
a dict to JSON, pickle and YAML (astropy's ECSV table metadata included); its copies are
ordinary, mutable dicts.
"""

from __future__ import annotations

import copy
import re

__all__ = ["FrozenDict", "frozen", "copied_meta", "without_wcs_keywords"]


class FrozenDict(dict):
    """A ``dict`` that refuses changes: the metadata of an immutable stack.  Its copies are ordinary dicts.

    Examples
    --------
    >>> meta = frozen({"truth": {"r_mag": 15.0}})
    >>> meta["truth"]["r_mag"] = 0.0
    Traceback (most recent call last):
    ...
    TypeError: BandStack.meta is read-only (copy.deepcopy(stack.meta) is a mutable copy); build a new stack with meta=... instead
    """

    def _read_only(self, *args, **kwargs):
        raise TypeError("BandStack.meta is read-only (copy.deepcopy(stack.meta) is a mutable copy); build a new stack "
                        "with meta=... instead")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self):
        return (dict, (dict(self),))

    def __copy__(self):
        return dict(self)

    def __deepcopy__(self, memo):
        return copy.deepcopy(dict(self), memo)


def _register_with_yaml():
    """Write a `FrozenDict` as the mapping it is with PyYAML's dumpers and astropy's (ECSV table metadata): an
    unknown dict subclass stopped them ("cannot represent an object")."""
    try:
        import yaml
        from astropy.io.misc.yaml import AstropyDumper
    except ImportError:  # no YAML, nothing to write with
        return
    dumpers = (yaml.SafeDumper, yaml.Dumper, AstropyDumper, getattr(yaml, "CSafeDumper", None),
               getattr(yaml, "CDumper", None))  # the C ones where libyaml is there
    for dumper in filter(None, dumpers):
        dumper.add_representer(FrozenDict, yaml.representer.SafeRepresenter.represent_dict)


_register_with_yaml()


def frozen(meta):
    """A deep copy of ``meta`` whose dicts refuse changes.

    Neither the caller's later edits nor a write into a nested dict
    (``stack.meta["truth"]["r_mag"] = 0``) reach the stack.  Other values (a header, a
    list) are copied (`copied_meta`).

    Parameters
    ----------
    meta : object

    Returns
    -------
    object
        ``meta`` with every dict a `FrozenDict`.

    Examples
    --------
    >>> import json
    >>> json.dumps(frozen({"truth": {"r_mag": 15.0}}))
    '{"truth": {"r_mag": 15.0}}'
    """
    if isinstance(meta, FrozenDict):  # a stack's own, read-only already (a derived stack's): nothing to copy
        return meta
    return FrozenDict({k: frozen(v) for k, v in meta.items()}) if isinstance(meta, dict) else copied_meta(meta)


def copied_meta(meta):
    """A deep copy of image or stack metadata, so that the owner's later edits do not reach it; a value that
    cannot be copied (a lock, an open file) is shared, as astropy's NDData shares all of its meta.

    Parameters
    ----------
    meta : object
        A header, mapping, list or any value.

    Returns
    -------
    object

    Examples
    --------
    >>> import threading
    >>> meta = {"truth": {"r_mag": 15.0}, "lock": threading.Lock()}
    >>> copy_ = copied_meta(meta)
    >>> copy_["truth"] is meta["truth"], copy_["lock"] is meta["lock"]
    (False, True)
    """
    try:
        return copy.deepcopy(meta)
    except (TypeError, copy.Error):
        if isinstance(meta, dict):
            return type(meta)((key, copied_meta(value)) for key, value in meta.items())
        if isinstance(meta, (list, tuple)):
            return type(meta)(copied_meta(value) for value in meta)
        return meta


#: A FITS header's WCS keywords (primary or alternate), SIP and lookup-table distortions included.
_WCS_KEYWORD = re.compile(r"^(WCSAXES|WCSNAME|CTYPE|CRPIX|CRVAL|CDELT|CUNIT|CROTA|CD\d+_|PC\d+_|PV\d+_|PS\d+_|LONPOLE|"
                          r"LATPOLE|RADESYS|RADECSYS|EQUINOX|CPDIS|CPERR|CQDIS|DP\d|DQ\d|D2IM|"
                          r"[AB]P?_(\d+_\d+|ORDER|DMAX)$)", re.IGNORECASE)


def without_wcs_keywords(meta):
    """A copy of an image's ``meta`` for a new pixel grid: a FITS header loses its WCS keywords.

    Written beside the new grid's WCS, the old grid's keywords would mix with it (an old SIP term
    or CD matrix left beside a new PC matrix), and the file would describe neither grid.

    Parameters
    ----------
    meta : mapping
        The image's metadata; a `~astropy.io.fits.Header` or a dict of its cards is
        cleaned, anything else copied.

    Returns
    -------
    mapping

    Examples
    --------
    >>> from astropy.io import fits
    >>> header = fits.Header({"OBJECT": "M51", "CTYPE1": "RA---TAN-SIP", "A_2_0": 3e-4, "CD1_1": -7e-5})
    >>> list(without_wcs_keywords(header))
    ['OBJECT']
    """
    from astropy.io import fits

    meta = copied_meta(meta)
    if isinstance(meta, fits.Header):
        for key in [k for k in meta if _WCS_KEYWORD.match(k)]:
            del meta[key]
    elif isinstance(meta, dict):  # a header's cards as a dict (NDData(meta=dict(header)))
        meta = type(meta)((k, v) for k, v in meta.items() if not (isinstance(k, str) and _WCS_KEYWORD.match(k)))
    return meta
