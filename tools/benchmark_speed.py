"""Speed, memory and op count of one distillation train step, vs the floor.

Builds every method as a real ``AFDDistiller`` from a paper config
(``teacher_ckpt=None``, random weights: speed does not depend on them) with
an SGD optimizer over its trainable parameters, and times the full train
step ``model.loss(inputs, data_samples)`` -> sum -> backward -> step ->
zero_grad. The floor is what any distillation step costs at least: the
same kind of teacher and student, teacher forward under ``no_grad`` +
student forward + CE + backward + step, with no recorder, loss or KD::

    python tools/benchmark_speed.py [--pair r56_r20] [--batch 64]
        [--iters 20] [--warmup 3] [--methods floor,afd,afd_compiled,...]
        [--device cpu|cuda] [--threads N] [--compile-options JSON]

Methods: ``floor``; ``afd`` (``configs/afd_<pair>.py``: AFD + KD 0.9,
eager); ``afd_compiled``, the same with the distiller's ``compile=True``
(the student's forward with its recorder hooks, and the AFD loss, under
``torch.compile`` with an activation memory budget of 0.5;
``--compile-options '{"mode": "reduce-overhead"}'`` for CUDA graphs,
``'{"activation_memory_budget": 1.0}'`` without the budget); ``kd``,
``at``, ``fitnet``, ``rkd``, ``crd``, ``l2t``:
the shipped baseline config of the pair (KD 0.9 included, as there), or
for a pair without one, the AFD config with that loss on the stage ends
(AT, FitNet, L2T) or the pooled features (RKD, CRD); ``dkd``, ``dist``,
``reviewkd``, ``kd_ls`` (KD with logit standardisation): their shipped
configs, which replace KD.

Detection pair ``frcnn_r101_r50`` (needs ``make install-det``): Faster
R-CNN R101-FPN -> R50-FPN, ``configs/detection/afd_faster-rcnn_*.py``,
batch 2 of 512 x 512 images with 5 random boxes each; methods ``floor``
(teacher ``extract_feat`` under ``no_grad`` + the student's own detection
losses), ``afd`` and ``cwd`` (CWD on the FPN levels)::

    python tools/benchmark_speed.py --pair frcnn_r101_r50 --threads 1

Time: in one process, all models built up front; after ``--warmup`` steps
of each, ``--iters`` rounds each run one step of every method, the order
rotated every round, so that load from other processes hits every method
alike. Reported: the median ms per step and its ratio to the floor's, and
for a compiled method the seconds of its first step (compilation) apart.

Peak tensor memory of a step (MiB): the bytes the method keeps between
steps (parameters, buffers, optimizer state) + the largest growth of
allocated tensor bytes during one step, summed from the allocation events
that ``torch.profiler`` (``profile_memory=True``) records: the same count
for eager and compiled code, on CPU and GPU, and deterministic.

Ops per step: the aten ops dispatched in one step of an eager method
(counted by a ``TorchDispatchMode``), and of them the kernel ops: those
that are not views (an op whose outputs all alias its inputs without
writing them, such as view, transpose, expand or detach, changes only
metadata). On a GPU each kernel op is at least one kernel launch, and a
CIFAR-size step there is launch-bound, so this is the GPU cost that a
CPU can measure. Not counted for compiled methods.

On a CPU shared with other jobs use ``--threads 1``: with more threads
than free cores every parallel op waits for a descheduled thread, which
swamps the differences being measured.
"""
import argparse
import gc
import json
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402
from torch.profiler import profile  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import afd_mm  # noqa: E402,F401  (registers)
from afd_mm.models.distiller import outputs_logits  # noqa: E402
from afd_mm.models.zoo_teacher import skip_teacher_weights  # noqa: E402
from afd_mm.registry import MODELS  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

_STAGES = dict(type='afd_mm.FeatureRecorder', patterns='backbone.layer*')
_POOLED = dict(type='afd_mm.FeatureRecorder', patterns='neck.gap')

# config name, default batch, input size, dataset length (CRD's banks)
PAIRS = {
    'r56_r20': dict(name='r56_r20_cifar100', batch=64, size=32,
                    num_data=50000),
    'wrn40-2_wrn16-2': dict(name='wrn40-2_wrn16-2_cifar100', batch=64,
                            size=32, num_data=50000),
    'r34_r18_imagenet': dict(name='r34_r18_imagenet', batch=32, size=224,
                             num_data=1281167),
}

# a baseline without a config for the pair: the AFD config with these
# (distill_loss, recorder of both sides); KD stays 0.9 as in the shipped
# baseline configs
FALLBACKS = {
    'kd': (None, None),
    'at': (dict(type='afd_mm.ATLoss'), _STAGES),
    'fitnet': (dict(type='afd_mm.FitNetLoss'), _STAGES),
    'rkd': (dict(type='afd_mm.RKDLoss'), _POOLED),
    'crd': (dict(type='afd_mm.CRDLoss'), _POOLED),
    'l2t': (dict(type='afd_mm.L2TLoss'), _STAGES),
}
# detection: config, default batch, square input size
DET_PAIRS = {
    'frcnn_r101_r50': dict(
        config='configs/detection/afd_faster-rcnn_r101-r50_fpn_1x_coco.py',
        batch=2, size=512),
}
DET_METHODS = ('floor', 'afd', 'cwd')
_FPN = dict(type='afd_mm.FeatureRecorder', patterns='neck.fpn_convs.*')
AFD_METHODS = ('floor', 'afd', 'afd_compiled')
# baselines shipped for every pair (configs/<method>/), KD replaced as there
MODERN = ('dkd', 'dist', 'reviewkd', 'kd_ls')
METHODS = AFD_METHODS + tuple(FALLBACKS) + MODERN


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train-step time, peak tensor memory and ops of '
        'distillation methods, as ratios to the floor, measured side by '
        'side')
    parser.add_argument('--pair', default='r56_r20',
                        choices=sorted(PAIRS) + sorted(DET_PAIRS))
    parser.add_argument('--batch', type=int, default=None,
                        help='batch size (default: 64 on CIFAR, 32 on '
                        'ImageNet, the per-GPU batch of its config)')
    parser.add_argument('--iters', type=int, default=20,
                        help='timed steps per method (default 20)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps per method first (default 3)')
    parser.add_argument('--methods', default=None,
                        help='comma-separated, from ' + ', '.join(METHODS)
                        + ' (detection: ' + ', '.join(DET_METHODS) + '); '
                        'default all; floor is always added')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda when present)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--compile-options', type=json.loads, default={},
                        help='JSON dict of the distiller\'s compile '
                        'options for afd_compiled (torch.compile keyword '
                        'arguments and activation_memory_budget), e.g. '
                        '\'{"mode": "reduce-overhead"}\'')
    args = parser.parse_args(argv)
    known = DET_METHODS if args.pair in DET_PAIRS else METHODS
    methods = [m.strip() for m in (args.methods or ','.join(known)).split(
        ',') if m.strip()]
    unknown = sorted(set(methods) - set(known))
    if unknown:
        parser.error(f'unknown --methods {unknown} for --pair {args.pair}; '
                     f'choose from {known}')
    args.methods = ['floor'] + [m for m in known[1:] if m in methods]
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return args


# ------------------------------------------------------------- building
def config_path(pair, method):
    """The shipped config of ``method`` on ``pair`` (a baseline's folder
    ``configs/<method>/``), else the AFD one."""
    if pair in DET_PAIRS:  # every method: the AFD config, loss replaced
        return osp.join(REPO, DET_PAIRS[pair]['config'])
    name = PAIRS[pair]['name']
    afd = osp.join(REPO, 'configs', f'afd_{name}.py')
    if method in AFD_METHODS:
        return afd
    path = osp.join(REPO, 'configs', method,
                    f"{method.replace('_', '-')}_{name}.py")
    return path if osp.isfile(path) else afd


def model_config(pair, method, lr=None, compile_options=None):
    """The AFDDistiller config of ``method`` on ``pair``.

    ``lr`` is L2T's look-ahead lr, which a Runner would give it.
    """
    path = config_path(pair, method)
    cfg = Config.fromfile(path).model
    skip_teacher_weights(cfg)  # random weights, nothing downloaded
    if method == 'floor':
        cfg.distill_loss, cfg.kd_weight = None, 0.0
    elif method == 'cwd':
        cfg.distill_loss = dict(type='afd_mm.CWDLoss',
                                student_recorder=_FPN, teacher_recorder=_FPN)
    elif method == 'afd_compiled':
        cfg.compile = compile_options or True
    elif (method not in AFD_METHODS
          and osp.basename(path).startswith('afd_')):
        loss, recorder = FALLBACKS[method]
        cfg.distill_loss = loss
        if recorder is not None:
            cfg.teacher_recorder = cfg.student_recorder = recorder
    loss = cfg.get('distill_loss')
    if isinstance(loss, dict) and loss.get('type') == 'afd_mm.CRDLoss':
        # its memory banks, sized by the training set a Runner would give
        cfg.distill_loss = dict(loss, num_data=PAIRS[pair]['num_data'])
    if method == 'l2t' and lr is not None:
        cfg.distill_loss = dict(cfg.distill_loss, inner_lr=lr)
    return cfg


def build(pair, method, device, optim_cfg, compile_options=None):
    """(distiller in train mode on ``device``, its SGD optimizer)."""
    model = MODELS.build(
        model_config(pair, method, optim_cfg['lr'], compile_options))
    model = model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.SGD(params, **optim_cfg)


def sgd_args(pair):
    """lr, momentum, weight decay of the pair config's SGD."""
    cfg = Config.fromfile(config_path(pair, 'afd'))
    opt = cfg.optim_wrapper.optimizer
    return dict(lr=opt.lr, momentum=opt.get('momentum', 0.0),
                weight_decay=opt.get('weight_decay', 0.0))


def det_batch(pair, size, device, seed=0):
    """mmdet's demo batch: random images, 5 random boxes each, through the
    student's DetDataPreprocessor: inputs (B, 3, H, W), DetDataSamples."""
    from mmdet.testing import demo_mm_inputs
    side = DET_PAIRS[pair]['size']
    torch.manual_seed(seed)
    packed = demo_mm_inputs(size, [(3, side, side)] * size,
                            num_items=[5] * size, num_classes=80)
    student = Config.fromfile(config_path(pair, 'afd')).model.student
    preprocessor = dict(student.data_preprocessor, _scope_=student._scope_)
    data = MODELS.build(preprocessor)(packed, True)
    return data['inputs'].to(device), [s.to(device)
                                       for s in data['data_samples']]


def batch(pair, size, device, seed=0):
    """Random inputs (B, 3, H, W) and DataSamples with labels, sample_idx."""
    if pair in DET_PAIRS:
        return det_batch(pair, size, device, seed)
    spec = PAIRS[pair]
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(size, 3, spec['size'], spec['size'], generator=gen)
    labels = torch.randint(100, (size, ), generator=gen)
    idx = torch.randperm(spec['num_data'], generator=gen)[:size]
    samples = []
    for label, index in zip(labels.tolist(), idx.tolist()):
        sample = DataSample(metainfo=dict(sample_idx=index))
        samples.append(sample.set_gt_label(label))
    return inputs.to(device), samples


# ----------------------------------------------------------------- steps
def floor_losses(model, inputs, data_samples):
    """Teacher forward (no grad) + student forward + CE: the floor (for a
    detector: the teacher's extract_feat, what distillation runs of it,
    and the student's own detection losses)."""
    with torch.no_grad():
        if outputs_logits(model.teacher):
            model.teacher(inputs, mode='tensor')
        else:
            model.teacher.extract_feat(inputs)
    return model.student.loss(inputs, data_samples)


def train_step(model, optimizer, inputs, data_samples, floor):
    losses = (floor_losses(model, inputs, data_samples) if floor else
              model.loss(inputs, data_samples))
    loss = sum(sum(v) if isinstance(v, list) else v  # lists: per level
               for k, v in losses.items() if 'loss' in k)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed_step(run, device):
    """Milliseconds of one call of ``run``."""
    _sync(device)
    start = time.perf_counter()
    run()
    _sync(device)
    return 1e3 * (time.perf_counter() - start)


# ------------------------------------------------------- memory and ops
def state_bytes(model, optimizer):
    """Bytes of the parameters, buffers and optimizer state, each once."""
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for t in tensors}
    return sum(storages.values())


def tensor_growth(run, device):
    """Largest growth of allocated tensor bytes on ``device`` in ``run()``,
    from the allocation events of the profiler's trace."""
    gc.collect()
    _sync(device)
    with profile(profile_memory=True) as prof:
        run()
        _sync(device)
    with tempfile.TemporaryDirectory() as tmp:
        trace = osp.join(tmp, 'trace.json')
        prof.export_chrome_trace(trace)
        with open(trace) as f:
            events = json.load(f)['traceEvents']
    kind = 0 if device == 'cpu' else 1  # the trace's 'Device Type'
    current = peak = 0
    for event in sorted((e for e in events if e.get('name') == '[memory]'
                         and e['args']['Device Type'] == kind),
                        key=lambda e: e['ts']):
        current += event['args']['Bytes']
        peak = max(peak, current)
    return peak


def _is_view(func) -> bool:
    """An aten op whose outputs all alias its inputs without writing them
    (view, transpose, expand, detach, ...): metadata only, no kernel."""
    returns = func._schema.returns
    return bool(returns) and all(
        r.alias_info is not None and not r.alias_info.is_write
        for r in returns)


class _OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside the mode, and of them those
    that are not views (each launches at least one kernel on a GPU)."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self.kernels = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        self.kernels += not _is_view(func)
        return func(*args, **(kwargs or {}))


def ops_per_step(run):
    """(aten ops dispatched, of them not views) in one call of ``run``."""
    counter = _OpCounter()
    with counter:
        run()
    return counter.count, counter.kernels


# ------------------------------------------------------------------ main
def build_run(args, method, inputs, samples, optim_cfg):
    """(one train step of ``method`` as a closure, its state bytes,
    seconds of its first step)."""
    model, optimizer = build(args.pair, method, args.device, optim_cfg,
                             args.compile_options)

    def run():
        train_step(model, optimizer, inputs, samples, method == 'floor')

    first = timed_step(run, args.device) / 1e3  # compiles afd_compiled
    return run, state_bytes(model, optimizer), first


def _rotations(names, rounds):
    for r in range(rounds):
        k = r % len(names)
        yield names[k:] + names[:k]


def measure_times(runs, device, iters, warmup):
    """{method: median ms per step}, in interleaved rounds."""
    names = list(runs)
    for name in names:
        for _ in range(warmup):
            runs[name]()
    times = {n: [] for n in names}
    for order in _rotations(names, iters):
        for name in order:
            times[name].append(timed_step(runs[name], device))
    return {n: statistics.median(times[n]) for n in names}


def device_name(device):
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'CPU {cpu}, {torch.get_num_threads()} torch threads'


def format_table(results, title):
    """Markdown table: each measure with its ratio to the floor's."""
    floor = results['floor']
    lines = [title, '',
             '| method | ms/step (median) | x floor | peak tensor MiB '
             '| x floor | ops/step | x floor | kernel ops/step | x floor '
             '| first step s |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name, r in results.items():
        ops = ' | '.join(
            f'{n} | {n / f:.2f}' for n, f in zip(r['ops'], floor['ops'])
        ) if r['ops'] is not None else '- | - | - | -'
        lines.append(
            f"| {name} | {r['ms']:.1f} | {r['ms'] / floor['ms']:.3f} | "
            f"{r['peak'] / 2**20:.1f} | {r['peak'] / floor['peak']:.3f} | "
            f"{ops} | {r['first']:.1f} |")
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope('mmpretrain')  # mmdet's dicts carry their _scope_
    torch.manual_seed(0)
    bsz = args.batch or {**PAIRS, **DET_PAIRS}[args.pair]['batch']
    inputs, samples = batch(args.pair, bsz, args.device)
    optim_cfg = sgd_args(args.pair)
    runs, states, firsts = {}, {}, {}
    for method in args.methods:
        runs[method], states[method], firsts[method] = build_run(
            args, method, inputs, samples, optim_cfg)
    times = measure_times(runs, args.device, args.iters, args.warmup)
    results = {}
    for m in runs:
        results[m] = dict(
            ms=times[m], first=firsts[m],
            peak=states[m] + tensor_growth(runs[m], args.device),
            ops=None if m.endswith('_compiled') else ops_per_step(runs[m]))
    title = (f'{args.pair}, batch {bsz}, {args.iters} timed steps per '
             f'method (medians), {device_name(args.device)}, torch '
             f'{torch.__version__}')
    table = format_table(results, title)
    print_log('\n' + table, logger='current')
    return results, table


if __name__ == '__main__':
    main()
