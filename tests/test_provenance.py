"""Provenance: what counts as an uncommitted tree."""


def test_experiment_outputs_do_not_make_the_tree_dirty(tmp_path):
    """A results file rewritten by its own experiment is not an uncommitted change; code is."""
    import subprocess

    from hwsim.provenance import OUTPUTS, git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / OUTPUTS).mkdir(parents=True)
    (tmp_path / OUTPUTS / "results.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / OUTPUTS / "results.json").write_text('{"rows": []}')
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2")
    assert git_commit(tmp_path).endswith("+dirty")
