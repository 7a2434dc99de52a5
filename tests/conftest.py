"""Shared fixtures."""

import pytest

from closedloop.cli import main


@pytest.fixture
def cli(capsys):
    """Run the ``closedloop`` command in-process: ``cli(*argv) -> (exit code, stdout, stderr)``.

    Argparse usage errors (SystemExit) become return codes.
    """

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="module")
def tracking_env():
    """A reset ``closedloop/ECAPTracking-v0`` env (unwrapped; default patient, 2 s episodes, no
    prefetch of the next patient), shared by the tests of one module."""
    import gymnasium as gym

    env = gym.make("closedloop/ECAPTracking-v0", patient="default", episode_s=2.0).unwrapped
    env.prefetch_next_patient = False
    env.reset(seed=0)
    return env


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with two CPUs for one test module (skipped without Ray)."""
    ray = pytest.importorskip("ray")
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """Torch on one thread (small networks on a busy 2-core machine), restored afterwards."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
