"""Several training/testing processes through MMEngine's Runner, with or without GPUs.

On GPUs nothing changes: MMEngine's ``init_dist`` (NCCL by default, ``env_cfg.dist_cfg``) and
its ``MMDistributedDataParallel`` with ``device_ids=[LOCAL_RANK]``, as MMDetection's tools do.

Without CUDA, MMEngine 0.10 cannot start: ``init_dist`` calls ``torch.cuda.set_device``, the
DDP wrapper is given ``device_ids`` (torch refuses them for CPU modules) and ``sync_bn='torch'``
builds ``torch.nn.SyncBatchNorm`` (CUDA tensors only). :func:`prepare_cpu_distributed`, called by
``tools/train.py`` and ``tools/test.py`` before the Runner is built, then

- initialises the default process group itself, with gloo (an NCCL ``dist_cfg`` is switched to
  gloo), from the variables torchrun (``--launcher pytorch``), Slurm (``slurm``) or Open MPI
  (``mpi``) set; ``Runner.setup_env`` sees an initialised group and skips ``init_dist``;
- sets ``model_wrapper_cfg`` to :class:`CPUDistributedDataParallel`: MMEngine's
  ``MMDistributedDataParallel`` built without device ids, whose module has its
  ``torch.nn.SyncBatchNorm`` layers (from ``sync_bn`` or a ``SyncBN`` norm_cfg) replaced by
  :class:`~uninet_mm.models.sync_bn.CPUSyncBatchNorm`.
Everything else (samplers, gradient all-reduce, rank-0 checkpoints, resume, result collection)
is MMEngine's own.
"""
import datetime
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from ..models.sync_bn import convert_to_cpu_sync_bn

LAUNCHERS = ('pytorch', 'slurm', 'mpi')


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper for CPU processes: no device ids; torch's SyncBatchNorm layers
    become :class:`~uninet_mm.models.sync_bn.CPUSyncBatchNorm` (same parameters and buffers).

    ``device_ids`` / ``output_device`` (which MMEngine's ``Runner.wrap_model`` passes) are
    accepted and dropped: torch's DDP takes none for CPU modules.
    """

    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        super().__init__(module=convert_to_cpu_sync_bn(module), **kwargs)


def _env_from_slurm():
    """RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT from the SLURM_* variables,
    as MMEngine's ``_init_dist_slurm`` derives them (the first host of the node list is the
    master; port ``MASTER_PORT`` or 29500), without touching CUDA."""
    for key in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        if key not in os.environ:
            raise RuntimeError(f'--launcher slurm: ${key} is not set; start the job with srun '
                               f'(tools/slurm_train.sh) or use --launcher pytorch (torchrun)')
    proc_id = int(os.environ['SLURM_PROCID'])
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1').strip()
        if not addr:
            raise RuntimeError(f'`scontrol show hostname {node_list}` gave no host: set '
                               f'MASTER_ADDR to the address of the first node')
        os.environ['MASTER_ADDR'] = addr
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = str(proc_id)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def _env_from_mpi():
    if 'MASTER_ADDR' not in os.environ:
        raise RuntimeError('--launcher mpi: set MASTER_ADDR (and MASTER_PORT) for the job')
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
    os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
    os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']


def init_cpu_process_group(launcher, backend='gloo', **kwargs):
    """Initialise the default process group of a CPU process started by ``launcher``
    (``kwargs``: those of ``env_cfg.dist_cfg``; ``timeout`` in seconds, as MMEngine's)."""
    if launcher == 'slurm':
        _env_from_slurm()
    elif launcher == 'mpi':
        _env_from_mpi()
    elif launcher == 'pytorch':
        missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
                   if k not in os.environ]
        if missing:
            raise RuntimeError(f'--launcher pytorch: ${missing[0]} is not set; start the '
                               f'processes with torchrun (tools/dist_train.sh CONFIG N)')
    else:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    kwargs.pop('init_backend', None)
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']), **kwargs)


def prepare_cpu_distributed(cfg):
    """Make a config with ``cfg.launcher`` in ``pytorch/slurm/mpi`` run on CPU processes.

    A no-op when CUDA is available or the launcher is ``none``. Otherwise initialises the gloo
    process group and sets ``cfg.model_wrapper_cfg`` (see the module docstring); returns ``cfg``.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return cfg
    env_cfg = dict(cfg.get('env_cfg', None) or {})
    dist_cfg = dict(env_cfg.get('dist_cfg', None) or {})
    backend = dist_cfg.pop('backend', 'gloo')
    if backend == 'nccl':  # the OpenMMLab default; NCCL needs GPUs
        backend = 'gloo'
    cfg.env_cfg = dict(env_cfg, dist_cfg=dict(dist_cfg, backend=backend))
    if not dist.is_initialized():
        init_cpu_process_group(launcher, backend=backend, **dist_cfg)

    wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
    kind = wrapper.pop('type', 'MMDistributedDataParallel')
    if kind not in ('MMDistributedDataParallel', 'CPUDistributedDataParallel'):
        raise RuntimeError(f'model_wrapper_cfg.type={kind!r} cannot run on CPU processes: use '
                           f'MMDistributedDataParallel (or run on GPUs)')
    # Runner.wrap_model's defaults when model_wrapper_cfg is None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel', **wrapper)
    return cfg
