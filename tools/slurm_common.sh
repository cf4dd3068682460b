# Sourced by tools/slurm_train.sh and tools/slurm_test.sh: checks the
# request against the partition (sinfo) before srun, so a request the
# partition can never give fails at once with what to change instead of
# waiting in the queue forever, and fills the defaults from the partition.
#
#   GPUS           tasks in all (mmpretrain's name); on a partition with
#                  GPUs default: its GPUs per node (one node), one GPU each
#   GPUS_PER_NODE  GPU tasks per node (default: min(GPUS, partition's));
#                  GPUS=0 or GPUS_PER_NODE=0 runs on CPU, no gres requested
#   TASKS          tasks in all on CPU (default: GPUS if set, else 1);
#                  a partition without GPUs always runs on CPU
#   TASKS_PER_NODE CPU tasks per node (default: TASKS, up to the node's
#                  CPUs)
#   Inside sbatch/salloc, TASKS, TASKS_PER_NODE and CPUS_PER_TASK default
#   to the allocation's (SLURM_NTASKS, ...), for GPU tasks as well.
#   CPUS_PER_TASK  cores per task (GPU default min(5, CPUs/GPUS_PER_NODE),
#                  CPU default CPUs/TASKS_PER_NODE); OMP_NUM_THREADS
#                  defaults to it
#   PYTHON         the Python of the tasks (default: the active
#                  environment's: $VIRTUAL_ENV, $CONDA_PREFIX, python(3))
#   MASTER_PORT    rendezvous port (PORT is read too); default: derived
#                  from the job id (afd_mm/utils/dist.py)
#   SRUN_ARGS      extra srun arguments, as they are

slurm_fail() {
    echo "$(basename "$0"): $*" >&2
    exit 2
}

# The first Python that is set or found, made absolute: every node runs
# the same interpreter whatever its PATH.
slurm_python() {
    local py=${PYTHON:-}
    if [ -z "$py" ]; then
        for py in "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" \
                  "${CONDA_PREFIX:+$CONDA_PREFIX/bin/python}" \
                  "$(command -v python)" "$(command -v python3)"; do
            [ -n "$py" ] && [ -x "$py" ] && break
        done
    fi
    py=$(command -v "$py") || slurm_fail "PYTHON='${PYTHON:-}' not found"
    "$py" -c "import importlib.util as u, sys; sys.exit(not all(
        u.find_spec(m) for m in ('mmengine', 'mmpretrain')))" \
        2>/dev/null || slurm_fail "$py cannot import mmengine and" \
        "mmpretrain: activate the environment they are installed in, or" \
        "set PYTHON=/path/to/env/bin/python."
    echo "$py"
}

# "NODES CPUS GPUS" of PARTITION: node count, the CPUs of its smallest
# node and the GPUs (gres gpu) of its largest.
slurm_partition() {
    local part=$1 lines
    command -v sinfo >/dev/null || slurm_fail "sinfo not found: run on a" \
        "Slurm login node, or a node of an allocation (sbatch/salloc)."
    lines=$(sinfo -h -p "$part" -o '%D %c %G' 2>&1) \
        || slurm_fail "sinfo -p $part failed: $lines"
    [ -n "$lines" ] || slurm_fail "partition '$part' does not exist;" \
        "partitions: $(sinfo -h -o '%P' | tr -d '*' | tr '\n' ' ')"
    echo "$lines" | awk '{
        nodes += $1; cpus = $2 + 0
        if (min == "" || cpus < min) min = cpus
        gpus = 0
        if (match($3, /gpu(:[^:,(]+)?:[0-9]+/)) {
            g = substr($3, RSTART, RLENGTH); sub(/.*:/, "", g); gpus = g + 0
        }
        if (gpus > maxg) maxg = gpus
    } END { print nodes, min, maxg + 0 }'
}

# Sets SRUN_REQUEST (srun's resource options) and exports the tasks'
# variables, from the variables above and PARTITION's size.
slurm_request() {
    local part=$1 info nodes cpus gpus tasks per_node needed
    info=$(slurm_partition "$part") || exit 2
    read -r nodes cpus gpus <<< "$info"
    if [ -n "${SLURM_JOB_ID:-}" ]; then  # in sbatch/salloc: its sizes
        TASKS=${TASKS:-${SLURM_NTASKS:-}}
        TASKS_PER_NODE=${TASKS_PER_NODE:-${SLURM_NTASKS_PER_NODE:-}}
        CPUS_PER_TASK=${CPUS_PER_TASK:-${SLURM_CPUS_PER_TASK:-}}
    fi
    if [ "$gpus" -gt 0 ] && [ "${GPUS:-1}" -gt 0 ] \
            && [ "${GPUS_PER_NODE:-1}" -gt 0 ]; then
        tasks=${GPUS:-${TASKS:-$gpus}}
        per_node=${GPUS_PER_NODE:-${TASKS_PER_NODE:-$((
            tasks < gpus ? tasks : gpus))}}
        [ "$per_node" -le "$gpus" ] || slurm_fail "GPUS_PER_NODE=$per_node" \
            "but partition '$part' has $gpus GPUs per node: set" \
            "GPUS_PER_NODE<=$gpus."
        CPUS_PER_TASK=${CPUS_PER_TASK:-$(( cpus / per_node < 5 ?
                                           cpus / per_node : 5 ))}
        SRUN_REQUEST="--gres=gpu:$per_node --ntasks-per-node=$per_node"
    else
        [ "$gpus" -gt 0 ] || [ "${GPUS:-0}" -eq 0 ] || echo "$(basename \
            "$0"): partition '$part' has no GPUs: $GPUS tasks on CPU" >&2
        tasks=${TASKS:-${GPUS:-1}}
        [ "$tasks" -gt 0 ] || tasks=1
        per_node=${TASKS_PER_NODE:-$((tasks < cpus ? tasks : cpus))}
        CPUS_PER_TASK=${CPUS_PER_TASK:-$((cpus / per_node))}
        SRUN_REQUEST="--ntasks-per-node=$per_node"
    fi
    [ "$CPUS_PER_TASK" -ge 1 ] || CPUS_PER_TASK=1
    [ $((per_node * CPUS_PER_TASK)) -le "$cpus" ] || slurm_fail \
        "$per_node tasks per node x CPUS_PER_TASK=$CPUS_PER_TASK cores" \
        "exceed the $cpus CPUs of partition '$part''s nodes: lower" \
        "CPUS_PER_TASK or the tasks per node."
    needed=$(( (tasks + per_node - 1) / per_node ))
    [ "$needed" -le "$nodes" ] || slurm_fail "$tasks tasks at $per_node" \
        "per node need $needed nodes; partition '$part' has $nodes: lower" \
        "GPUS/TASKS or raise GPUS_PER_NODE/TASKS_PER_NODE."
    SRUN_REQUEST="$SRUN_REQUEST --ntasks=$tasks --cpus-per-task=$CPUS_PER_TASK"
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CPUS_PER_TASK}
    MASTER_PORT=${MASTER_PORT:-${PORT:-}}
    [ -z "$MASTER_PORT" ] || export MASTER_PORT
}
