"""Nothing written is lost: the refusals of the tools before they write.

- :func:`check_work_dir`: ``tools/train.py`` into a work dir that already holds checkpoints
  needs ``--resume`` (continue) or ``--overwrite`` (start over, writing over them).
- :func:`check_output`: a tool never writes over one of its inputs, nor over an existing output
  unless told to (``--force``); :func:`refuse_output` as an argument parser's error.
- :func:`check_resumable`: ``--resume`` needs a checkpoint with a training state.
"""
import glob
import os.path as osp

__all__ = ['checkpoints_in', 'check_work_dir', 'check_output', 'refuse_output',
           'check_resumable',
           'UserInputError']


class UserInputError(ValueError):
    """A refusal of a tool: the message names the problem and the way out (one line)."""


def checkpoints_in(work_dir):
    """The checkpoints (``*.pth``, ``last_checkpoint``) directly in ``work_dir``, sorted."""
    if not work_dir or not osp.isdir(work_dir):
        return []
    found = glob.glob(osp.join(glob.escape(work_dir), '*.pth'))
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        found.append(osp.join(work_dir, 'last_checkpoint'))
    return sorted(osp.basename(p) for p in found)


def check_work_dir(work_dir, resume=None, overwrite=False, tool='tools/train.py'):
    """Refuse to train into ``work_dir`` if it holds checkpoints and neither ``resume`` nor
    ``overwrite`` says what to do with them."""
    if resume is not None and overwrite:
        raise UserInputError(f'{tool}: --resume continues the run in {work_dir!r} and '
                             f'--overwrite starts it over; give one of them')
    if resume not in (None, 'auto') and '://' not in resume and not osp.isfile(resume):
        raise UserInputError(f'{tool}: --resume {resume!r}: no such checkpoint; give the path '
                             f'of a checkpoint this tool wrote, or --resume alone for the '
                             f'latest one in the work dir')
    found = checkpoints_in(work_dir)
    if found and resume is None and not overwrite:
        shown = ', '.join(found[:4]) + (f' (+{len(found) - 4} more)' if len(found) > 4 else '')
        raise UserInputError(
            f'{tool}: work dir {work_dir!r} already holds checkpoints ({shown}); pass --resume '
            f'to continue from the latest, --overwrite to start over (its checkpoints will be '
            f'written over), or another --work-dir')
    return found


def _same(a, b):
    try:
        return osp.samefile(a, b)
    except OSError:
        return osp.abspath(a) == osp.abspath(b)


def check_output(path, inputs=(), force=False, tool='this tool', flag='--force'):
    """Refuse to write ``path`` if it is one of ``inputs``, or exists and ``force`` is off."""
    for src in inputs:
        if src and osp.exists(src) and _same(path, src):
            raise UserInputError(f'{tool}: the output {path!r} is the input {src!r}; writing '
                                 f'it would destroy the input: choose another output path')
    if osp.exists(path) and not force:
        raise UserInputError(f'{tool}: the output {path!r} already exists; pass {flag} to '
                             f'write over it, or choose another output path')
    return path


def refuse_output(parser, path, inputs=(), force=False, tool='this tool'):
    """:func:`check_output` for a tool's argument parser: a refusal is ``parser.error``
    (usage and the one-line message, exit status 2)."""
    try:
        return check_output(path, inputs, force, tool)
    except UserInputError as e:
        parser.error(str(e))


def check_resumable(checkpoint, filename, tool='tools/train.py'):
    """``--resume`` needs ``meta.epoch``/``meta.iter`` and the optimizer state, which only the
    checkpoints a Runner writes hold (not converted or weights-only files)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    have = [k for k in ('epoch', 'iter') if isinstance(meta, dict) and k in meta]
    if len(have) < 2 or 'optimizer' not in checkpoint:
        raise UserInputError(
            f'{tool}: --resume {filename!r}: it holds weights only (no training state: '
            f'meta epoch/iter and optimizer), so there is no run to continue; to start a new '
            f'run from its weights, drop --resume and pass --cfg-options load_from={filename}')
