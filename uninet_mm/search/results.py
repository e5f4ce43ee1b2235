"""The durable results file of a search: one JSON object per line, one line per finished
candidate (trained, cached or failed), appended, flushed and fsync'ed the moment the candidate
finishes, so a crash (even ``kill -9``) loses at most the candidates still running.

A line that a crash cut short (the last one, without its newline, not valid JSON) is ignored on
reading and cut off before the next append, so the file stays valid JSON lines; a complete last
record whose newline is missing is kept (the newline is added before the next append).

Record fields: ``id`` (``<strategy>-<index>``), ``strategy``, ``index``, ``tokens``, ``arch``,
``status`` (``'ok'`` or ``'failed'``), ``accuracy`` (or the evaluator's ``metric``), ``flops``
(multiply-adds at the proxy resolution), ``params``, ``reward``, ``seed``, ``time`` (seconds
spent on it), ``t_start`` / ``t_end`` (Unix time on the worker around the evaluation; not in
cached records), ``error`` (failed ones), ``cached_from`` (a repeated token sequence served from
an earlier record instead of re-training), ``finished_at`` (UTC, ISO 8601).
"""
import json
import os
import os.path as osp
import warnings


class ResultsFile:
    """Append-only JSON-lines file of finished candidates."""

    def __init__(self, path, fsync=True):
        self.path = path
        self.fsync = fsync
        d = osp.dirname(osp.abspath(path))
        os.makedirs(d, exist_ok=True)

    def exists(self):
        return osp.isfile(self.path) and osp.getsize(self.path) > 0

    def load(self):
        """All complete records, in file order."""
        if not osp.isfile(self.path):
            return []
        records = []
        with open(self.path, 'rb') as f:
            data = f.read()
        lines = data.split(b'\n')
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # cut short by a crash: the candidate is redone
                    warnings.warn(f'{self.path}: ignoring an incomplete last line (a crash '
                                  f'while writing it)')
                else:
                    raise ValueError(f'{self.path}: line {i + 1} is not valid JSON; the file '
                                     f'is damaged beyond a cut-off last line') from None
        return records

    def _truncate_partial_line(self):
        if not osp.isfile(self.path):
            return
        with open(self.path, 'rb+') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b'\n':
                return
            f.seek(0)
            data = f.read()
            keep = data.rfind(b'\n') + 1
            try:
                json.loads(data[keep:])
            except ValueError:  # cut short by a crash: dropped, the candidate is redone
                f.truncate(keep)
            else:               # complete, only its newline is missing: kept
                f.seek(0, os.SEEK_END)
                f.write(b'\n')

    def append(self, record):
        """Write one record durably (flush, and fsync unless ``fsync=False``)."""
        line = json.dumps(record, sort_keys=True, allow_nan=True)
        if '\n' in line:
            raise ValueError('results: a record must serialise to one line')
        self._truncate_partial_line()
        with open(self.path, 'a') as f:
            f.write(line + '\n')
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
