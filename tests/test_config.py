"""Tests for sweep.config: sources, precedence and checked values."""

import pytest

from sweep import config as config_module
from sweep.config import (
    DEFAULT_STORAGE,
    KEYS,
    RULES,
    DeviceSpec,
    PrunerSpec,
    SweepConfig,
    config_from_dict,
    parse_device,
    parse_pruner,
    resolve_config,
)
from sweep.errors import ConfigError
from sweep.metrics import parse_goal


def write_toml(tmp_path, text: str):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_issue():
    """Check that the defaults are the documented ones (storage, ranges, objective)."""
    config = resolve_config({}, env={})
    assert config.storage == DEFAULT_STORAGE == "sqlite:///studies/sweeps.db"
    assert (config.minority_weight, config.hidden_width, config.threshold) == ((1.0, 1000.0), (1, 64), (0.01, 0.99))
    assert (config.objective, config.data, config.epochs, config.batch_size) == ("f1", "seed", 50, 100)
    assert (config.learning_rate, config.hidden_layers) == ("auto", "auto")


@pytest.mark.parametrize(
    "file_value, env_value, cli_value, expected",
    [
        (5, None, None, 5),
        (5, "7", None, 7),
        (5, "7", 9, 9),
        (None, "7", None, 7),
    ],
)
def test_precedence_file_env_cli(tmp_path, file_value, env_value, cli_value, expected):
    """Check that the command line beats the environment, which beats the file, which beats the default."""
    path = write_toml(tmp_path, f"trials = {file_value}\n" if file_value is not None else "")
    env = {"SWEEP_TRIALS": env_value} if env_value is not None else {}
    assert resolve_config({"trials": cli_value}, config_file=path, env=env).trials == expected


def test_storage_env_overrides_default_and_flag_overrides_env():
    """Check that SWEEP_STORAGE overrides the default and --storage overrides both."""
    env = {"SWEEP_STORAGE": "sqlite:///env.db"}
    assert resolve_config({}, env=env).storage == "sqlite:///env.db"
    assert resolve_config({"storage": "sqlite:///flag.db"}, env=env).storage == "sqlite:///flag.db"


def test_file_ranges_and_every_key(tmp_path):
    """Check that a TOML file sets ranges as [low, high] lists and that the config round-trips through to_dict."""
    path = write_toml(
        tmp_path,
        "minority_weight = [2, 300]\nhidden_width = [2, 16]\nthreshold = [0.1, 0.9]\nhidden_layers = 2\n"
        'objective = "cost:miss=20,false_alarm=1"\ntimeout = 60\n',
    )
    config = resolve_config({}, config_file=path, env={})
    assert config.minority_weight == (2.0, 300.0) and config.hidden_width == (2, 16)
    assert config.threshold == (0.1, 0.9) and config.hidden_layers == 2 and config.timeout == 60.0
    assert config_from_dict(config.to_dict()) == config


def test_every_field_has_a_cli_flag():
    """Check that each config key is an option of `sweep run` (every CLI option has a key and vice versa)."""
    import inspect

    from sweep.cli import run

    flags = set(inspect.signature(run).parameters) - {"config", "param"} | {
        "space"
    }  # repeated --param fills the space key
    assert flags == set(SweepConfig.__dataclass_fields__)


@pytest.mark.parametrize(
    "cli, match",
    [
        ({"trials": 0}, r"trials = 0 \(from --trials\).*integer >= 1"),
        ({"trials": -3}, r"trials = -3"),
        ({"epochs": "many"}, r"epochs = 'many'.*expected an integer"),
        ({"minority_weight": "1000:1"}, r"minority_weight = '1000:1'.*LOW <= HIGH"),
        ({"minority_weight": "0:10"}, r"minority_weight.*0 < LOW"),
        ({"hidden_width": "0:4"}, r"hidden_width.*1 <= LOW"),
        ({"threshold": "0.2:1.5"}, r"threshold.*< 1"),
        ({"threshold": "0.5"}, r"threshold = '0.5'.*LOW:HIGH"),
        ({"objective": "accuracy"}, r"objective 'accuracy'.*unknown objective.*expected f1"),
        ({"timeout": -1}, r"timeout.*positive"),
        ({"outage_limit": -5}, r"outage_limit = -5 \(from --outage-limit\).*seconds >= 0"),
        ({"outage_limit": "soon"}, r"outage_limit = 'soon'.*expected a number"),
        ({"validation_fraction": 1.5}, r"validation_fraction"),
        ({"hidden_layers": 12}, r"hidden_layers = 12 .*expected auto, or an integer from 0 \(a linear network\) to 8"),
        ({"hidden_layers": "deep"}, r"hidden_layers = 'deep' .*expected auto, or an integer from 0"),
        ({"weight_decay": -1}, r"weight_decay = -1 \(from --weight-decay\).*0 <= DECAY <= 100"),
        ({"weight_decay": 90, "learning_rate": 0.01}, r"weight_decay = 90 shrinks each kernel by .* 0\.9 per step"),
        ({"pruner": "fast"}, r"pruner = 'fast'.*none \| median"),
        ({"pruner": "percentile:120"}, r"pruner.*0 < P < 100"),
        ({"intra_op_threads": -1}, r"intra_op_threads = -1.*>= 0"),
        ({"population": -1}, r"population = -1.*>= 0"),
        ({"population": 600}, r"population = 600.*0 \(automatic\) or 1 to 512"),
        ({"population": 4, "hidden_layers": 2}, r"population = 4 trains one-hidden-layer networks"),
        ({"population": 4, "hidden_layers": 0}, r"population = 1 for linear or deeper networks"),
        ({"device": "tpu"}, r"device = 'tpu' \(from --device\).*auto \| cpu \| gpu \| gpu:N"),
        ({"device": "gpu:"}, r"device = 'gpu:'"),
        ({"pruner": "median:3"}, r"pruner = 'median:3'.*none \| median"),
        ({"pruner": "percentile:many"}, r"pruner = 'many' \(from --pruner\).*expected a number"),
        ({"objective": " "}, r"objective = ' ' \(from --objective\).*non-empty string"),
        (
            {"threshold_search": "grid"},
            r"threshold_search = 'grid' \(from --threshold-search\).*one of: sampled, tuned",
        ),
        (
            {"threshold_search": "tuned", "objective": "pareto:precision,recall"},
            r"threshold_search = tuned chooses .* several",
        ),
    ],
)
def test_bad_values_name_the_key(cli, match):
    """Check that an out-of-range value is a ConfigError naming the key and its source."""
    with pytest.raises(ConfigError, match=match):
        resolve_config(cli, env={})


@pytest.mark.parametrize(
    "text, match",
    [
        ("trails = 3\n", r"unknown key 'trails'"),
        ("trials = 0\n", r"trials = 0 \(from config file"),
        ("trials = [\n", r"not valid TOML"),
    ],
)
def test_bad_files(tmp_path, text, match):
    """Check that unknown keys, bad values and broken TOML in a config file are errors that say where."""
    with pytest.raises(ConfigError, match=match):
        resolve_config({}, config_file=write_toml(tmp_path, text), env={})


def test_bad_environment_value_names_the_variable():
    """Check that a bad SWEEP_* variable is reported with the variable's name."""
    with pytest.raises(ConfigError, match="environment variable SWEEP_EPOCHS"):
        resolve_config({}, env={"SWEEP_EPOCHS": "0"})


def test_missing_config_file(tmp_path):
    """Check that a missing --config file is a ConfigError."""
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config({}, config_file=tmp_path / "nope.toml", env={})


def test_data_path_is_made_absolute(tmp_path, monkeypatch):
    """Check that a relative data path is stored absolute, so export finds it from another directory."""
    monkeypatch.chdir(tmp_path)
    assert resolve_config({"data": "x.csv"}, env={}).data == str(tmp_path / "x.csv")


def test_every_key_has_one_rule():
    """Check that each config key is coerced and checked by exactly one rule of the table."""
    assert set(RULES) == set(KEYS)


@pytest.mark.parametrize(
    "key, text, attribute, parsed",
    [
        ("objective", "FBeta:2", "goal", parse_goal("fbeta:2")),
        ("pruner", "Percentile:25", "pruner_spec", PrunerSpec("percentile", 25.0)),
        ("pruner", "median", "pruner_spec", PrunerSpec("median")),
        ("device", "GPU:1", "device_spec", DeviceSpec("gpu", 1)),
        ("device", "cpu", "device_spec", DeviceSpec("cpu")),
    ],
)
def test_specs_are_parsed_into_values_and_stored_as_text(key, text, attribute, parsed):
    """Check that objective, pruner and device specs become their parsed values on the config, while the fields,
    to_dict and config_from_dict keep the spec text."""
    import dataclasses
    import pickle

    config = resolve_config({key: text}, env={})
    assert getattr(config, attribute) == parsed
    stored = config.to_dict()[key]
    assert stored == getattr(config, key) == (text if key == "objective" else text.lower())
    for copy in (
        config_from_dict(config.to_dict()),
        pickle.loads(pickle.dumps(config)),
        dataclasses.replace(config, trials=5),
    ):
        assert getattr(copy, attribute) == parsed and getattr(copy, key) == stored
    assert SweepConfig(**{key: text}) == config


def test_each_spec_is_parsed_once(monkeypatch, tmp_path):
    """Check that resolving a config parses its objective once, also when the data path is made absolute afterwards."""
    calls = []

    def counting(spec, source="--objective"):
        calls.append(spec)
        return parse_goal(spec, source)

    monkeypatch.setattr(config_module, "parse_goal", counting)
    monkeypatch.setitem(config_module.SPECS, "objective", ("goal", counting))
    config = resolve_config({"objective": "ap", "data": str(tmp_path / "x.csv")}, env={})
    assert calls == ["ap"] and config.goal.kind == "ap"


@pytest.mark.parametrize(
    "parse, text, match",
    [
        (parse_pruner, "sometimes", r"pruner = 'sometimes' \(from pruner\)"),
        (parse_device, "gpu:x", r"device = 'gpu:x' \(from device\)"),
    ],
)
def test_a_spec_given_in_code_is_checked_too(parse, text, match):
    """Check that a bad spec in SweepConfig(...) written in code is a ConfigError naming the key."""
    key = "pruner" if parse is parse_pruner else "device"
    with pytest.raises(ConfigError, match=match):
        SweepConfig(**{key: text})
