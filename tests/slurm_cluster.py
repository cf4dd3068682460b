"""A real Slurm on this machine, for tests only.

``SlurmCluster(root).start()`` installs Debian's ``slurm-wlm`` and
``munge`` with apt-get when ``slurmctld`` is missing (as root; otherwise
it fails with the reason), then starts, without systemd and in the
foreground of child processes, one ``munged`` with its own key and
socket, ``slurmctld`` and one ``slurmd -N NODE`` per node, all from a
``slurm.conf`` written under ``root``. ``stop()`` ends exactly those
processes. Clients (srun, sinfo, ...) find the cluster through
``cluster.env`` (``SLURM_CONF``).

Two nodes emulate a 2-node cluster on one host. They are named
``127.0.0.1`` and ``127.0.0.2``: both are this host's loopback, resolve
with no /etc/hosts entry, and so the job's first node (what
``scontrol show hostname`` gives tasks as ``MASTER_ADDR``) is reachable
from every task. Each declares ``CPUS`` cores whatever the host has
(``SlurmdParameters=config_overrides``). Debian's Slurm is built without
multiple-slurmd support, so each node has its own ``NodeHostname`` (a
label; ``-N`` names the node) and its own port.
"""
import os
import os.path as osp
import shutil
import socket
import subprocess
import time

NODES = ('127.0.0.1', '127.0.0.2')
CPUS = 2
PARTITION = 'cpu'
PACKAGES = ('slurm-wlm', 'munge')

SLURM_CONF = '''ClusterName=afdtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
'''
NODE_LINE = ('NodeName={name} NodeHostname=afdnode{i} NodeAddr={name} '
             'Port={port} CPUs={cpus} RealMemory=1000 State=UNKNOWN\n')


class SlurmError(RuntimeError):
    """Slurm could not be installed or started; the message says why."""


class SlurmCluster:
    """munged + slurmctld + one slurmd per node under ``root``."""

    def __init__(self, root):
        self.root = str(root)
        self.env = dict(os.environ,
                        SLURM_CONF=osp.join(self.root, 'slurm.conf'))
        self.procs = []

    def start(self, timeout=60.0):
        """Install if needed, write the configs, start, wait for idle."""
        install()
        for sub in ('munge', 'state', 'spool', 'log'):
            os.makedirs(osp.join(self.root, sub), mode=0o700, exist_ok=True)
        self._write_conf()
        munge = osp.join(self.root, 'munge')
        self._start(['munged', '--foreground', '--force',
                     f'--key-file={munge}/key', f'--socket={munge}/socket',
                     f'--pid-file={munge}/pid', f'--seed-file={munge}/seed',
                     f'--log-file={munge}/log'], 'munged')
        self._wait(lambda: osp.exists(f'{munge}/socket'), timeout, 'munged')
        conf = self.env['SLURM_CONF']
        self._start(['slurmctld', '-D', '-f', conf], 'slurmctld')
        for node in NODES:
            self._start(['slurmd', '-D', '-f', conf, '-N', node],
                        f'slurmd.{node}')
        self._wait(self._all_idle, timeout, 'the nodes to be idle')
        return self

    def stop(self):
        """End the daemons this object started (SIGTERM, then SIGKILL)."""
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def run(self, *cmd, **kwargs):
        """A Slurm client command against this cluster; its stdout."""
        out = subprocess.run(cmd, env=self.env, capture_output=True,
                             text=True, timeout=60, **kwargs)
        if out.returncode != 0:
            raise SlurmError(f'{cmd} failed: {out.stderr}')
        return out.stdout

    def logs(self):
        """The tail of every daemon's log, for failure messages."""
        tails = []
        for name in sorted(os.listdir(osp.join(self.root, 'log'))):
            with open(osp.join(self.root, 'log', name)) as f:
                tails.append(f'--- {name}\n{f.read()[-1500:]}')
        return '\n'.join(tails)

    def _write_conf(self):
        key = osp.join(self.root, 'munge', 'key')
        with open(key, 'wb') as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        ports = free_ports(1 + len(NODES))
        text = SLURM_CONF.format(root=self.root, ctld_port=ports[0])
        for i, (name, port) in enumerate(zip(NODES, ports[1:]), 1):
            text += NODE_LINE.format(name=name, i=i, port=port, cpus=CPUS)
        text += (f'PartitionName={PARTITION} Nodes=ALL Default=YES '
                 'MaxTime=INFINITE State=UP\n')
        with open(self.env['SLURM_CONF'], 'w') as f:
            f.write(text)

    def _start(self, cmd, name):
        log = open(osp.join(self.root, 'log', f'{name}.out'), 'w')
        with log:
            self.procs.append(subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))

    def _all_idle(self):
        out = subprocess.run(['sinfo', '-h', '-N', '-o', '%t'],
                             env=self.env, capture_output=True, text=True)
        states = out.stdout.split()
        return len(states) == len(NODES) and set(states) == {'idle'}

    def _wait(self, ready, timeout, what):
        end = time.monotonic() + timeout
        while not ready():
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > end:
                self.stop()
                raise SlurmError(f'waiting for {what}: exited {dead}\n'
                                 f'{self.logs()}')
            time.sleep(0.2)


def install():
    """apt-get install Slurm and munge when absent; SlurmError if not."""
    missing = [b for b in ('munged', 'slurmctld', 'slurmd', 'srun')
               if shutil.which(b) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmError(
            f'{missing} not installed and not root: run `apt-get install '
            f'{" ".join(PACKAGES)}` (Debian), then the tests again.')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    for cmd in (['apt-get', 'update', '-q'],
                ['apt-get', 'install', '-y', '-q', '--no-install-recommends',
                 *PACKAGES]):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SlurmError(f'`{" ".join(cmd)}` failed ({out.returncode}):'
                             f'\n{out.stdout[-2000:]}{out.stderr[-2000:]}')


def free_ports(num):
    """``num`` distinct ports free on this host right now."""
    socks = [socket.socket() for _ in range(num)]
    try:
        for sock in socks:
            sock.bind(('127.0.0.1', 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()
