"""GPU diagnostics of the command line: `--version` names the CUDA runtime
and architectures (or says the build has none), and a command that runs a
model lists the GPUs and says in one line why none is used, for each case
simulated through the test hook M40LLM_TEST_GPU_SIM (no driver, a driver too
old, an architecture this build lacks, too little free memory). The decision
itself is unit-tested in tests/unit/test_gpu_diag.c."""
import os
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("M40LLM_BIN")
pytestmark = pytest.mark.skipif(not BIN or not os.path.isfile(BIN),
                                reason="M40LLM_BIN is not set to the m40-llm executable")


def m40(*args, env=None):
    e = dict(os.environ)
    e.pop("M40LLM_TEST_GPU_SIM", None)
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300, env=e)


def cuda_build():
    return "built without CUDA" not in m40("--version").stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    synth = Path(BIN).parent / "m40-synth"
    if not synth.is_file():
        pytest.skip("m40-synth is not beside m40-llm")
    out = tmp_path_factory.mktemp("diag") / "tiny.gguf"
    subprocess.run([str(synth), "--preset", "tiny", "-q", "-o", str(out)], check=True)
    return str(out)


def test_version():
    r = m40("--version")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("m40-llm ")
    if cuda_build():
        assert lines[1].startswith("CUDA runtime ") and "architectures " in lines[1], r.stdout
    else:
        assert lines[1].startswith("built without CUDA"), r.stdout


BENCH = ["bench", "-p", "8", "-n", "2", "-r", "1", "--threads", "2"]

CASES = {
    "none": ["no NVIDIA driver found", "install NVIDIA driver"],
    "old-driver:10020": ["the driver supports CUDA 10.2", "needs at least", "Install NVIDIA driver "],
    "arch:37": ["GPU 0: Tesla M40 24GB (simulated), compute 3.7",
                "compute capability 3.7, not in this build's architectures", "-DM40LLM_CUDA_ARCHS=37"],
    "mem:1000": ["has 1000 bytes free", "the model needs", "smaller quantization"],
}


@pytest.mark.parametrize("sim", sorted(CASES))
def test_why_no_gpu(tiny, sim):
    r = m40(BENCH[0], tiny, *BENCH[1:], env={"M40LLM_TEST_GPU_SIM": sim})
    assert r.returncode == 0, r.stderr
    # one line says why, and the run goes on on the CPU
    why = [l for l in r.stderr.splitlines() if "no GPU used" in l]
    assert len(why) == 1, r.stderr
    assert "running on the CPU" in why[0]
    version = m40("--version").stdout
    want = CASES[sim] if cuda_build() else ["built without CUDA"]
    if sim.startswith("mem:") and cuda_build() and "_52" not in version:
        # a build without sm_52 (CUDA 13) cannot run the simulated M40 at all
        want = ["compute capability 5.2, not in this build's architectures"]
    for s in want:
        assert s in r.stderr, (s, r.stderr)


def test_cpu_asked_for_says_nothing(tiny):
    r = m40(BENCH[0], tiny, *BENCH[1:], "--device", "cpu", env={"M40LLM_TEST_GPU_SIM": "none"})
    assert r.returncode == 0, r.stderr
    assert "no GPU used" not in r.stderr and "GPU 0" not in r.stderr


@pytest.mark.parametrize("sim,want", [
    ("arch:37", "not used (architecture not in this build)"),
    ("old-driver:10020", "not used (driver too old)"),
])
def test_info_lists_each_gpu_and_why(sim, want):
    if not cuda_build():
        pytest.skip("built without CUDA: the hook simulates a GPU only in CUDA builds")
    r = m40("info", "--no-bandwidth", env={"M40LLM_TEST_GPU_SIM": sim})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    gpu = [l for l in lines if l.startswith("GPU 0: ")]
    assert gpu and "compute " in gpu[0] and "driver CUDA " in gpu[0] and want in gpu[0], r.stdout
    assert any(l.startswith("no GPU used: ") for l in lines), r.stdout


def test_info_without_a_driver_says_why():
    r = m40("info", "--no-bandwidth", env={"M40LLM_TEST_GPU_SIM": "none"})
    assert r.returncode == 0, r.stderr
    assert any(l.startswith("no GPU used: ") and "CPU" in l for l in r.stdout.splitlines()), \
        r.stdout


def test_split_when_no_one_card_has_room(tmp_path):
    """The default of --gpus: a model whose KV cache no simulated card holds
    alone but two do together is split over them (said in one line); with
    real cards hidden (CUDA_VISIBLE_DEVICES empty, as on a machine without
    a GPU) the run goes on on the CPU, saying so."""
    if not cuda_build():
        pytest.skip("built without CUDA: the hook simulates GPUs only in CUDA builds")
    synth = Path(BIN).parent / "m40-synth"
    if not synth.is_file():
        pytest.skip("m40-synth is not beside m40-llm")
    model = tmp_path / "kv.gguf"
    subprocess.run([str(synth), "--layers", "4", "--embd", "256", "--heads", "4", "--kv-heads", "4",
                    "--ff", "512", "--vocab", "512", "--ctx", "262144", "-q", "-o", str(model)],
                   check=True)
    # f16 KV: 4 layers x 256 x 2 x 2 bytes = 4 KiB a position; 200,000 of
    # them about 819 MB: more than one card's 700 MB, less than two (less
    # the 512 MiB a further card keeps)
    r = m40(BENCH[0], str(model), *BENCH[1:], "--ctx", "200000", "--kv", "f16",
            env={"M40LLM_TEST_GPU_SIM": "mems:700000000,700000000", "CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert sum("split over GPUs 0,1" in l and "--gpus" in l for l in lines) == 1, r.stderr
    assert sum(l.startswith("m40-llm: GPU ") and l.endswith(": used") for l in lines) == 2, r.stderr
    # no such cards here: the CPU runs it, and says so
    assert any("GPUs 0,1:" in l and "running on the CPU" in l for l in lines), r.stderr
    # one card with room: that one alone, no split
    r = m40(BENCH[0], str(model), *BENCH[1:], "--ctx", "200000", "--kv", "f16",
            env={"M40LLM_TEST_GPU_SIM": "mems:700000000,900000000", "CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 0, r.stderr
    assert "split over" not in r.stderr and "GPU 1: " in r.stderr, r.stderr
