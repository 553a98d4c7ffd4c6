import tempfile

import minari
import numpy as np
import pytest

from ctflow_gym.data import (
    POLICY_FILE,
    BuildConfig,
    build_dataset,
    build_record,
    combine_datasets,
    dataset_summary,
    load_dataset,
    load_transitions,
    make_windows,
    thin_dataset,
)


def test_round_trip_through_minari_on_disk(random_dataset_path, datasets_root, monkeypatch):
    by_path = load_dataset(random_dataset_path)
    by_data_folder = load_dataset(random_dataset_path / "data")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(datasets_root))
    by_id = load_dataset("ctflow/hopper/random-v0")
    by_minari = minari.load_dataset("ctflow/hopper/random-v0")
    assert by_path.total_steps == by_data_folder.total_steps == by_id.total_steps == by_minari.total_steps == 1500
    first, again = by_path[0], by_minari[0]
    np.testing.assert_array_equal(first.observations, again.observations)
    np.testing.assert_array_equal(first.actions, again.actions)
    assert by_path.env_spec.id == "Hopper-v5"
    assert by_path.storage.metadata["ref_max_score"] == pytest.approx(3234.3)


def test_build_record_says_how_it_was_made(random_dataset):
    record = build_record(random_dataset)
    assert record["config"]["kind"] == "random"
    assert record["config"]["seed"] == 3
    assert record["wall_time_s"] >= 0
    summary = dataset_summary(random_dataset)
    assert summary["steps"] == 1500 and summary["has_sim_states"]
    assert summary["return_min"] <= summary["return_mean"] <= summary["return_max"]


def test_builds_are_reproducible_for_a_seed(tmp_path, random_dataset):
    again = build_dataset(BuildConfig(kind="random", n_steps=1500, seed=3, root=str(tmp_path), progress_bar=False))
    rebuilt = load_dataset(again)
    for a, b in zip(random_dataset.iterate_episodes(), rebuilt.iterate_episodes()):
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.observations, b.observations)


def _episodes(dataset) -> list:
    return [(e.observations, e.actions, e.rewards, e.infos["sim_state"]) for e in dataset.iterate_episodes()]


def test_shards_define_the_data_and_workers_only_the_wall_time(tmp_path, random_dataset_path):
    def build(workers: int, root: str):
        config = BuildConfig(kind="random", n_steps=301, seed=3, shards=3, workers=workers, root=root)
        return load_dataset(build_dataset(BuildConfig(**{**config.__dict__, "progress_bar": False})))

    one, two = build(1, str(tmp_path / "a")), build(2, str(tmp_path / "b"))
    assert one.total_steps == two.total_steps == 301
    for a, b in zip(_episodes(one), _episodes(two), strict=True):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert build_record(one)["shards"] == [f"ctflow/hopper/random-shard{i}-v0" for i in range(3)]
    first = load_dataset(build_dataset(BuildConfig(kind="random", n_steps=101, seed=3, root=str(tmp_path / "c"))))
    for a, b in zip(_episodes(first), _episodes(one)):  # shard 0 is the unsharded build of its size
        np.testing.assert_array_equal(a[1], b[1])
    assert not any(p.name.startswith(".ctflow") for p in (tmp_path / "b").iterdir())

    joined = load_dataset(
        combine_datasets(
            [random_dataset_path, tmp_path / "a" / "ctflow/hopper/random-v0"], "x/joined-v0", root=tmp_path / "j"
        )
    )
    joined_windows = make_windows(joined, window=4)
    assert joined.total_steps == 1500 + 301 and joined_windows.sim_states is not None
    assert joined_windows.sim_state_spec == make_windows(random_dataset_path, window=4).sim_state_spec is not None
    with pytest.raises(ValueError, match="sources: combining needs at least two"):
        combine_datasets([random_dataset_path], "x/one-v0", root=tmp_path / "j")
    with pytest.raises(FileExistsError, match="dataset_id"):
        combine_datasets([random_dataset_path, random_dataset_path], "x/joined-v0", root=tmp_path / "j")
    cheetah = build_dataset(
        BuildConfig(env_id="HalfCheetah-v5", kind="random", n_steps=20, root=str(tmp_path / "h"), progress_bar=False)
    )
    with pytest.raises(ValueError, match="sources: the datasets are of different envs"):
        combine_datasets([random_dataset_path, cheetah], "x/mixed-v0", root=tmp_path / "j")
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["x"]  # no scratch folder left


def test_existing_dataset_is_not_overwritten(random_dataset_path, datasets_root):
    with pytest.raises(FileExistsError, match="dataset_id"):
        build_dataset(BuildConfig(kind="random", n_steps=10, seed=3, root=str(datasets_root), progress_bar=False))


def test_medium_and_medium_expert_from_sb3_policies(tmp_path):
    from stable_baselines3 import SAC

    policy = tmp_path / "sac.zip"
    SAC("MlpPolicy", "Hopper-v5", seed=0, device="cpu").save(policy)
    medium = build_dataset(
        BuildConfig(kind="medium", n_steps=200, policy=str(policy), root=str(tmp_path), progress_bar=False)
    )
    assert load_dataset(medium).total_steps == 200
    mixed = build_dataset(
        BuildConfig(
            kind="medium-expert",
            n_steps=300,
            policy=str(policy),
            expert_policy=str(policy),
            root=str(tmp_path),
            progress_bar=False,
        )
    )
    assert load_dataset(mixed).total_steps == 300


def test_medium_replay_records_sac_training_and_saves_policy(tmp_path, monkeypatch):
    scratch = tmp_path / "tempdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where SB3's default logger would make a folder
    config = BuildConfig(
        kind="medium-replay",
        n_steps=600,
        min_steps=300,
        eval_every=300,
        eval_episodes=1,
        target_return=-1e9,
        root=str(tmp_path),
        progress_bar=False,
        device="cpu",
        sac_kwargs={"learning_starts": 100, "batch_size": 32},
    )
    path = build_dataset(config)
    dataset = load_dataset(path)
    record = build_record(dataset)
    assert record["target_reached"] and record["sac_steps"] == 300
    assert dataset.total_steps == 300
    assert (path / POLICY_FILE).is_file()
    assert len(make_windows(dataset, window=4)) > 0
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("SB3-")], "SAC training left a log folder"


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    from stable_baselines3 import SAC

    from ctflow_gym.data import builder

    policy = tmp_path / "sac.zip"
    SAC("MlpPolicy", "Hopper-v5", seed=0, device="cpu").save(policy)
    root = tmp_path / "root"
    real_policy = builder.behaviour_policy

    def interrupting_policy(*args):
        act = real_policy(*args)
        calls = [0]

        def step(observation):
            calls[0] += 1
            if calls[0] > 50:
                raise KeyboardInterrupt
            return act(observation)

        return step

    monkeypatch.setattr(builder, "behaviour_policy", interrupting_policy)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(BuildConfig(kind="medium", n_steps=200, policy=str(policy), root=str(root), progress_bar=False))
    assert list(root.iterdir()) == []


def test_unknown_dataset_id_or_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no Minari dataset 'nobody/nothing-v0'"):
        load_dataset("nobody/nothing-v0")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no Minari dataset"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(TypeError, match="dataset must be"):
        load_dataset(42)


def _buffer_dataset(dataset_id: str, env, episodes):
    from minari.data_collector import EpisodeBuffer

    buffers = [EpisodeBuffer(**{k: list(v) for k, v in episode.items()}) for episode in episodes]
    return minari.create_dataset_from_buffers(
        dataset_id,
        buffer=buffers,
        env=env,
        description="test",
        algorithm_name="test",
        code_permalink="test",
        author="test",
        author_email="t@t",
    )


def test_nan_in_data_is_reported_with_its_place(tmp_path, monkeypatch):
    import gymnasium as gym

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("Hopper-v5")
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(11, 11))
    rewards = rng.normal(size=10)
    rewards[4] = np.nan
    episode = {
        "observations": observations,
        "actions": rng.uniform(-1, 1, (10, 3)).astype(np.float32),
        "rewards": rewards,
        "terminations": np.zeros(10, bool),
        "truncations": np.r_[np.zeros(9, bool), True],
    }
    dataset = _buffer_dataset("test/hopper/nan-v0", env, [episode])
    with pytest.raises(ValueError, match=r"rewards must be finite; found nan at index \(4,\) in episode 0"):
        make_windows(dataset, window=3)
    episode["rewards"] = np.zeros(10)
    episode["observations"][2, 5] = np.inf
    dataset = _buffer_dataset("test/hopper/inf-v0", env, [episode])
    with pytest.raises(ValueError, match=r"observations must be finite; found inf at index \(2, 5\)"):
        make_windows(dataset, window=3)


def test_discrete_action_space_is_rejected(tmp_path, monkeypatch):
    import gymnasium as gym

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("CartPole-v1")
    episode = {
        "observations": np.zeros((6, 4), np.float32),
        "actions": np.zeros(5, np.int64),
        "rewards": np.ones(5),
        "terminations": np.r_[np.zeros(4, bool), True],
        "truncations": np.zeros(5, bool),
    }
    dataset = _buffer_dataset("test/cartpole/discrete-v0", env, [episode])
    with pytest.raises(TypeError, match="dataset: a continuous 1-D Box action space is required"):
        make_windows(dataset, window=2)
    with pytest.raises(TypeError, match="env_id: a continuous 1-D Box action space is required"):
        build_dataset(
            BuildConfig(env_id="CartPole-v1", kind="random", n_steps=10, root=str(tmp_path / "b"), progress_bar=False)
        )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kind": "expert"}, ValueError, "kind must be one of"),
        ({"kind": "random", "n_steps": 0}, ValueError, "n_steps"),
        ({"kind": "medium"}, ValueError, "policy"),
        ({"kind": "medium", "policy": "/no/such.zip"}, FileNotFoundError, "policy: no SB3 model zip or actor folder"),
        ({"kind": "medium-replay", "n_steps": 10, "min_steps": 20}, ValueError, "min_steps"),
        ({"env_id": "Humanoid-v5", "kind": "random", "n_steps": 5}, KeyError, "no D4RL reference returns"),
        ({"kind": "random", "n_steps": 5, "workers": 0}, ValueError, "workers must be an integer >= 1"),
        ({"kind": "random", "n_steps": 5, "shards": 6}, ValueError, "shards must be an integer in"),
        ({"kind": "medium-replay", "shards": 2}, ValueError, "shards must be 1 for kind='medium-replay'"),
    ],
)
def test_bad_build_configs(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        build_dataset(BuildConfig(root=str(tmp_path), progress_bar=False, **kwargs))
    assert not any(p.name.startswith(".ctflow-build") for p in tmp_path.iterdir()) if tmp_path.exists() else True


def test_thin_dataset_keeps_every_kth_episode_with_states(random_dataset_path, tmp_path):
    source = load_dataset(random_dataset_path)
    path = thin_dataset(random_dataset_path, 3, tmp_path, dataset_id="test/hopper/thin-v0")
    thinned = load_dataset(path)
    assert thinned.total_episodes == len(range(0, source.total_episodes, 3))
    for kept, original in zip(thinned.iterate_episodes(), source.iterate_episodes(range(0, source.total_episodes, 3))):
        np.testing.assert_array_equal(kept.actions, original.actions)
        np.testing.assert_array_equal(kept.infos["sim_state"], original.infos["sim_state"])
    assert build_record(thinned)["thinned"]["keep_every"] == 3
    assert build_record(thinned)["config"]["kind"] == "random"
    with pytest.raises(ValueError, match="keep_every"):
        thin_dataset(random_dataset_path, 0, tmp_path)


def test_thin_dataset_to_its_best_episodes_is_filtered_bcs_data(random_dataset_path, tmp_path):
    from agents.bc.filtering import top_episodes

    path = thin_dataset(random_dataset_path, None, tmp_path, dataset_id="test/hopper/top-v0", top_fraction=0.2)
    best = top_episodes(load_transitions(random_dataset_path), 0.2)
    kept = load_transitions(path)
    np.testing.assert_array_equal(kept.observations, best.observations)  # the same episodes, in the same order
    np.testing.assert_array_equal(kept.actions, best.actions)
    assert build_record(load_dataset(path))["thinned"]["top_fraction"] == 0.2
    assert make_windows(load_dataset(path), 8).sim_states is not None  # improvable: states kept
    for bad in (0.0, 1.5, True):
        with pytest.raises(ValueError, match="top_fraction"):
            thin_dataset(random_dataset_path, None, tmp_path, dataset_id="test/hopper/x-v0", top_fraction=bad)
    with pytest.raises(ValueError, match="exactly one"):
        thin_dataset(random_dataset_path, 2, tmp_path, dataset_id="test/hopper/x-v0", top_fraction=0.2)


def test_thin_dataset_keeps_chosen_episodes(random_dataset_path, tmp_path):
    source = load_dataset(random_dataset_path)
    path = thin_dataset(random_dataset_path, None, tmp_path, "test/hopper/chosen-v0", episodes=[5, 2])
    kept = list(load_dataset(path).iterate_episodes())
    for written, chosen in zip(kept, source.iterate_episodes([2, 5]), strict=True):  # in the dataset's order
        np.testing.assert_array_equal(written.actions, chosen.actions)
    assert build_record(load_dataset(path))["thinned"]["episodes"] == [2, 5]
    with pytest.raises(ValueError, match="episodes: ids"):
        thin_dataset(random_dataset_path, None, tmp_path, "test/hopper/bad-v0", episodes=[source.total_episodes])


def test_thin_dataset_to_a_step_target_keeps_the_whole_range(random_dataset_path, tmp_path):
    source = load_dataset(random_dataset_path)
    lengths = [len(e.actions) for e in source.iterate_episodes()]
    path = thin_dataset(random_dataset_path, None, tmp_path, dataset_id="test/hopper/target-v0", target_steps=600)
    thinned = load_dataset(path)
    assert thinned.total_steps >= 600
    kept = list(thinned.iterate_episodes())
    np.testing.assert_array_equal(kept[0].actions, next(source.iterate_episodes([0])).actions)
    np.testing.assert_array_equal(kept[-1].actions, next(source.iterate_episodes([source.total_episodes - 1])).actions)
    # the fewest: one episode fewer (evenly spaced) would fall short
    fewer = np.unique(np.round(np.linspace(0, len(lengths) - 1, thinned.total_episodes - 1)).astype(int))
    assert np.sum(np.asarray(lengths)[fewer]) < 600
    assert build_record(thinned)["thinned"]["target_steps"] == 600
    with pytest.raises(ValueError, match="exactly one of keep_every, target_steps, top_fraction and episodes"):
        thin_dataset(random_dataset_path, 2, tmp_path, target_steps=600)
    with pytest.raises(ValueError, match="target_steps must be an integer"):
        thin_dataset(random_dataset_path, None, tmp_path, target_steps=10**9)


def test_thin_dataset_in_pieces_keeps_a_part_of_every_episode(random_dataset_path, tmp_path):
    source = load_dataset(random_dataset_path)
    episodes = list(source.iterate_episodes())
    pieces = [(i, start) for i, e in enumerate(episodes) for start in range(0, len(e.actions), 5)]
    target = source.total_steps // 2
    path = thin_dataset(random_dataset_path, None, tmp_path, "test/hopper/pieces-v0", target_steps=target, piece=5)
    thinned = load_dataset(path)
    written = list(thinned.iterate_episodes())
    lengths = np.array([len(episodes[i].actions[start : start + 5]) for i, start in pieces])
    fewer = np.unique(np.round(np.linspace(0, len(pieces) - 1, len(written) - 1)).astype(int))
    assert thinned.total_steps >= target > lengths[fewer].sum()  # the fewest evenly spaced pieces that reach it
    assert len(written) < len(pieces) and all(len(e.actions) <= 5 for e in written)
    actions = {(i, start): episodes[i].actions[start : start + 5].tobytes() for i, start in pieces}
    kept = [key for key, a in actions.items() if any(w.actions.tobytes() == a for w in written)]  # where from
    assert kept[0] == pieces[0] and kept[-1] == pieces[-1]  # the whole range, first and last pieces included
    whole = load_dataset(thin_dataset(random_dataset_path, None, tmp_path, "test/hopper/whole-v0", target_steps=target))
    assert len({i for i, _ in kept}) > whole.total_episodes  # parts of more episodes than whole-episode thinning
    first, original = written[0], episodes[0]
    np.testing.assert_array_equal(first.infos["sim_state"], original.infos["sim_state"][:6])  # states kept
    assert first.truncations[-1] and not first.terminations[-1]  # its episode went on after the piece
    assert build_record(thinned)["thinned"]["piece"] == 5
    for bad in (0, True):
        with pytest.raises(ValueError, match="piece must be an integer >= 1"):
            thin_dataset(random_dataset_path, None, tmp_path, "test/hopper/x-v0", target_steps=100, piece=bad)
    with pytest.raises(ValueError, match="piece: thins pieces to a step target, so it needs target_steps"):
        thin_dataset(random_dataset_path, 2, tmp_path, "test/hopper/x-v0", piece=5)


def test_thin_by_id_carries_the_policy_beside_data(random_dataset_path, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "root"
    source = root / "ctflow/hopper/random-v0"
    shutil.copytree(random_dataset_path, source)
    (source / POLICY_FILE).write_bytes(b"not a real policy")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    path = thin_dataset("ctflow/hopper/random-v0", 2, tmp_path / "out", progress_bar=False)
    assert (path / POLICY_FILE).read_bytes() == b"not a real policy"
    assert load_dataset(path).total_episodes == len(range(0, load_dataset(source).total_episodes, 2))


def test_best_episodes_is_filtered_bcs_rule_and_names_bad_input():
    from ctflow_gym.data.thinning import best_episodes

    lengths, returns = np.array([10, 30, 20, 40]), np.array([1.0, 5.0, 5.0, 2.0])
    np.testing.assert_array_equal(best_episodes(lengths, returns, 0.5), [1, 2])  # ties: the earlier first
    np.testing.assert_array_equal(best_episodes(lengths, returns, 0.01), [1])  # the best kept even when longer
    for bad in (0.0, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="fraction"):
            best_episodes(lengths, returns, bad)
    with pytest.raises(ValueError, match="returns: one per episode"):
        best_episodes(lengths, returns[:2], 0.5)
