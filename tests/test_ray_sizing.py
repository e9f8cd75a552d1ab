"""The actor-pool sizing rule of yolo_adapters.ray (docs/ray.md, "Sizing") as a function, without Ray: nodes,
pool and per-actor numbers in, the plan or PoolFitError out. The Ray tests (tests/test_ray.py) run the same
cases on a 2-CPU Ray and on two 1-CPU nodes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.support.needs import require

require("ray", extra="ray,test")

from yolo_adapters.errors import OptionError  # noqa: E402
from yolo_adapters.ray._sizing import (  # noqa: E402
    Node,
    PoolFitError,
    Upstream,
    parse_concurrency,
    plan_pool,
    shortfall,
    upstream_of,
)

pytestmark = pytest.mark.timeout(60)

READS = Upstream(1.0, ("ReadImage",))
ONE_NODE = [Node(2)]  # ray.init(num_cpus=2)
TWO_NODES = [Node(1), Node(1)]  # ray.cluster_utils.Cluster, two 1-CPU nodes


def plan(nodes, **kwargs):
    kwargs.setdefault("num_cpus", None)
    return plan_pool(nodes, **kwargs)


# -- the reported hang: read_images, concurrency=2, 2 CPUs ---------------------------------------------------
def test_two_actors_beside_read_tasks_on_two_cpus_get_half_a_cpu_each():
    got = plan(ONE_NODE, concurrency=2, upstream=READS)
    assert (got.concurrency, got.num_cpus, got.sized) == (2, 0.5, True)
    assert "ReadImage" in got.note
    # what the unsized pool would have been: both CPUs held, the read task starved
    assert shortfall(ONE_NODE, 2, 1.0, reserve=1.0) is not None
    assert shortfall(ONE_NODE, 2, got.num_cpus, reserve=1.0) is None


def test_explicit_numbers_that_starve_the_reads_are_refused_with_what_to_pass():
    with pytest.raises(PoolFitError) as info:
        plan(ONE_NODE, concurrency=2, num_cpus=1, upstream=READS)
    message = str(info.value)
    assert "ReadImage would never get a CPU" in message
    for fix in ("concurrency=1", "num_cpus=0.5", "leave num_cpus unset"):
        assert fix in message
    assert isinstance(info.value, OptionError)


def test_path_sources_need_no_read_tasks_and_keep_whole_cpus():
    got = plan(ONE_NODE, concurrency=2)
    assert (got.num_cpus, got.sized) == (1.0, False)
    assert plan(ONE_NODE, concurrency=None).concurrency == 2


def test_a_pool_larger_than_the_cluster_is_sized_or_refused():
    got = plan(ONE_NODE, concurrency=4)
    assert (got.concurrency, got.num_cpus, got.sized) == (4, 0.5, True)
    with pytest.raises(PoolFitError, match=r"Ray can place 2.*concurrency=2.*num_cpus=0.5"):
        plan(ONE_NODE, concurrency=4, num_cpus=1)


def test_autoscaling_pools_must_fit_at_their_max():
    got = plan(ONE_NODE, concurrency=(1, 4), upstream=READS)
    assert (got.concurrency, got.num_cpus) == ((1, 4), 0.25)  # 4 x 0.25 beside one 1-CPU read task
    assert plan(ONE_NODE, concurrency=(1, 1, 1), num_cpus=1, upstream=READS).concurrency == (1, 1, 1)
    with pytest.raises(PoolFitError, match=r"concurrency=\(1, 1\)"):
        plan(ONE_NODE, concurrency=(1, 4), num_cpus=1, upstream=READS)


def test_two_one_cpu_nodes_cannot_hold_two_actors_beside_a_read_task():
    """Ray spreads actors over nodes: one on each 1-CPU node leaves no node a whole CPU for a read task, whatever
    fraction each actor holds, so the pool is refused (and 1 actor, the default, fits)."""
    with pytest.raises(PoolFitError, match=r"ReadImage would never get a CPU.*concurrency=1.*num_cpus=0"):
        plan(TWO_NODES, concurrency=2, upstream=READS)
    assert shortfall(TWO_NODES, 2, 0.5, reserve=1.0) is not None
    assert plan(TWO_NODES, concurrency=None, upstream=READS).concurrency == 1
    assert plan(TWO_NODES, concurrency=2, num_cpus=0, upstream=READS).num_cpus == 0.0
    # without read tasks: one whole CPU per node, or three actors at half a CPU (2/3 would not pack)
    assert plan(TWO_NODES, concurrency=2).num_cpus == 1.0
    assert plan(TWO_NODES, concurrency=3).num_cpus == 0.5


def test_one_cpu_node_with_read_tasks_has_no_cpu_for_actors():
    with pytest.raises(PoolFitError, match=r"num_cpus=0 \(the actors then share"):
        plan([Node(1)], concurrency=None, upstream=READS)
    assert plan([Node(1)], concurrency=None, num_cpus=0, upstream=READS).concurrency == 1


def test_accelerators_limit_the_pool_and_are_never_shrunk():
    gpu_node = [Node(8, gpus=2)]
    got = plan(gpu_node, concurrency=None, num_gpus=1, default_cpus=0.5)
    assert (got.concurrency, got.num_cpus, got.num_gpus) == (2, 0.5, 1)
    with pytest.raises(PoolFitError, match=r"8 CPUs, 2 GPUs.*concurrency=2.*fractional num_gpus"):
        plan(gpu_node, concurrency=4, num_gpus=1, default_cpus=0.5)
    assert plan(gpu_node, concurrency=4, num_gpus=0.5, default_cpus=0.5).concurrency == 4
    with pytest.raises(PoolFitError, match=r"0 NPU.*add nodes.*check_fit=False"):
        plan([Node(8)], concurrency=None, resources={"NPU": 1}, default_cpus=0.5)
    npu_nodes = [Node(4, resources={"NPU": 1}), Node(4, resources={"NPU": 1})]
    assert plan(npu_nodes, concurrency=None, resources={"NPU": 1}, default_cpus=0.5).concurrency == 2


def test_default_pool_sizes_are_what_they_were_on_one_node():
    """concurrency=None: the CPUs (one left for reads beside a Dataset) over num_cpus, as before the checks."""
    assert plan([Node(8)], concurrency=None, upstream=READS).concurrency == 7
    assert plan([Node(8)], concurrency=None, upstream=Upstream(), default_reserve=1.0).concurrency == 7
    assert plan([Node(8)], concurrency=None).concurrency == 8
    assert plan(ONE_NODE, concurrency=None, upstream=Upstream(), default_reserve=1.0).concurrency == 1
    assert plan([Node(8)], concurrency=None, num_cpus=2, upstream=READS).concurrency == 3


def test_check_fit_false_passes_the_numbers_through():
    got = plan(ONE_NODE, concurrency=4, num_cpus=1, check=False)
    assert (got.concurrency, got.num_cpus, got.sized) == (4, 1.0, False)


def test_malformed_numbers_are_refused():
    for bad in (0, (2, 1), (1, 2, 3), (1,), True, "2"):
        with pytest.raises(ValueError):
            parse_concurrency(bad)
    with pytest.raises(OptionError):
        plan(ONE_NODE, concurrency=1, num_cpus=-1)
    with pytest.raises(OptionError):
        plan(ONE_NODE, concurrency=1, resources={"NPU": "one"})


def test_upstream_tasks_come_from_the_logical_plan():
    def op(kind: str, name: str, inputs=(), **remote):
        cls = type(kind, (), {})
        node = cls()
        node.name, node.input_dependencies, node.ray_remote_args = name, list(inputs), remote
        return node

    read = op("Read", "ReadImage", scheduling_strategy="SPREAD")
    mapped = op("MapRows", "Map(f)", [read], num_cpus=2)
    assert upstream_of(SimpleNamespace(_logical_plan=SimpleNamespace(dag=mapped))) == Upstream(
        2.0, ("ReadImage", "Map(f)")
    )
    assert upstream_of(SimpleNamespace(_logical_plan=SimpleNamespace(dag=read))) == Upstream(1.0, ("ReadImage",))
    held = op("InputData", "InputData")
    assert upstream_of(SimpleNamespace(_logical_plan=SimpleNamespace(dag=held))) == Upstream(0.0, ())
    assert upstream_of(object()).cpus == 1.0  # unreadable plan: the usual read task is assumed
