"""Run configs: the schema travels with the run, a fine-tune inherits its parent's model and
schema and refuses another, and train.py's flags come from the config fields."""

import json
import os
import subprocess
import sys

import pytest

from faceage_tf import datasets, models
from faceage_tf.schema import Schema
from faceage_tf.training import TrainConfig, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = [sys.executable, os.path.join(ROOT, "training", "train.py")]


@pytest.fixture
def parent_run(tmp_path):
    """A run folder's config: a residual net at 48 px with its own normalisation."""
    config = TrainConfig(architecture="residual", schema={"input_size": 48, "mean": 120.0, "std": 60.0},
                         network_options={"residual": {"blocks": [1, 1, 1, 1]}}, gender_input=False)
    run = tmp_path / "parent"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    return str(run)


def test_config_json_holds_the_whole_schema_and_every_network_option(parent_run):
    with open(os.path.join(parent_run, "config.json")) as f:
        stored = json.load(f)
    schema = Schema.from_dict(stored["schema"])
    assert stored["schema"] == schema.to_dict()
    assert (schema.input_size, schema.mean, schema.std) == (48, 120.0, 60.0)
    assert stored["network_options"] == {"residual": {"widths": [32, 64, 128, 256], "blocks": [1, 1, 1, 1]}}
    assert load_config(parent_run).to_dict() == stored


def test_the_default_recipe_chain_resolves(tmp_path):
    """configs/serving_crops.json, then the fine-tune, polish and QAT configs on top of it, as
    training/make_default_model.sh runs them."""
    parent = str(tmp_path)
    for name in ("serving_crops.json", "default_finetune.json", "default_polish.json", "default_qat.json"):
        with open(os.path.join(ROOT, "configs", name)) as f:
            options = json.load(f)
        config = TrainConfig.resolve(dict(options, init_from=parent) if name != "serving_crops.json" else options)
        if name == "default_polish.json":  # milder framing than the recipe's other steps, served at its centre
            assert config.augmentation["scale_range"] == [0.9, 1.2] and config.learning_rate < 1e-3
            assert config.serving_zoom == 1.05
        assert config.schema == Schema(input_size=64, age_group_preset="fairface9")
        assert config.members == ("attentional", "residual") and config.gender_input
        (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    assert config.qat and config.epochs == 1 and config.serving_zoom == 1.05  # QAT serves what its parent serves


def test_fine_tune_and_qat_configs_inherit_model_and_schema(parent_run):
    for name in ("default_finetune.json", "default_polish.json", "default_qat.json"):
        with open(os.path.join(ROOT, "configs", name)) as f:
            options = json.load(f)
        child = TrainConfig.resolve(dict(options, init_from=parent_run))
        parent = load_config(parent_run)
        assert child.schema.to_dict() == parent.schema.to_dict()
        assert (child.architecture, child.members, child.network_options, child.gender_input) == \
               (parent.architecture, parent.members, parent.network_options, parent.gender_input)
    # Asking again for what the parent has is fine.
    TrainConfig.resolve({"init_from": parent_run, "schema": {"input_size": 48}, "architecture": "residual"})


def test_a_qat_run_keeps_its_parents_loss_weights_and_served_framing(tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    sources = ["utkface:../shared/data/utkface", "csv:faces.csv"]
    (parent / "config.json").write_text(json.dumps(TrainConfig(
        age_balance=0.0, sources=sources, source_weights={"csv": 2.0}, serving_zoom=1.05).to_dict()))
    with open(os.path.join(ROOT, "configs", "default_qat.json")) as f:
        qat = json.load(f)
    child = TrainConfig.resolve(dict(qat, init_from=str(parent)))
    assert (child.age_balance, child.source_weights, child.serving_zoom) == (0.0, {"csv": 2.0}, 1.05)
    asked = TrainConfig.resolve(dict(qat, init_from=str(parent), age_balance=0.5, source_weights={}))
    assert (asked.age_balance, asked.source_weights) == (0.5, {})
    fine_tune = TrainConfig.resolve({"init_from": str(parent)})  # a fine-tune chooses its own
    assert (fine_tune.age_balance, fine_tune.source_weights) == (0.5, {})


@pytest.mark.parametrize("options, named", [
    ({"schema": {"input_size": 96}}, "schema.input_size is 48 in {run} but 96 here"),
    ({"schema": {"mean": 127.5}}, "schema.mean is 120.0 in {run} but 127.5 here"),
    ({"schema": {"age_group_preset": "adience8"}}, 'schema.age_group_preset is "fairface9" in {run} but "adience8"'),
    ({"architecture": "ensemble"}, 'architecture is "residual" in {run} but "ensemble" here'),
    ({"network_options": {"residual": {"blocks": [2, 2, 2, 2]}}}, "network_options.residual.blocks is [1, 1, 1, 1]"),
    ({"gender_input": True}, "gender_input is false in {run} but true here"),
])
def test_a_different_model_or_schema_is_refused_naming_both_values(parent_run, options, named):
    with pytest.raises(ValueError) as error:
        TrainConfig.resolve(dict(options, init_from=parent_run))
    assert named.format(run=parent_run) in str(error.value)


def test_train_py_refuses_another_input_size_naming_both(parent_run, tmp_path):
    result = subprocess.run(TRAIN + ["--init-from", parent_run, "--input-size", "96", "--out", str(tmp_path / "child")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "schema.input_size is 48" in result.stderr and "but 96 here" in result.stderr
    assert not os.path.exists(tmp_path / "child" / "config.json")


def test_unknown_options_and_networks_are_refused():
    with pytest.raises(ValueError, match="Unknown config option"):
        TrainConfig.from_dict({"input_sise": 64})
    with pytest.raises(ValueError, match="has no option"):
        TrainConfig(architecture="residual", network_options={"residual": {"depth": 3}})
    with pytest.raises(ValueError, match="does not use"):
        TrainConfig(architecture="residual", network_options={"attentional": {"width": 8}})
    with pytest.raises(ValueError, match="architecture must be one of"):
        TrainConfig(architecture="vgg")
    assert TrainConfig(architecture="residual").members == ("residual",)
    assert TrainConfig().members == models.DEFAULT_MEMBERS


@pytest.mark.parametrize("zoom", [0.0, -1.0, 1.6])
def test_a_serving_zoom_beyond_the_prepared_margin_is_refused(zoom):
    with pytest.raises(ValueError, match=rf"serving_zoom must lie in \(0, 1.5\].*Received: {zoom}"):
        TrainConfig(serving_zoom=zoom)


def test_a_config_json_written_before_nesting_still_loads(parent_run):
    """Runs made before the schema and network options were nested keep loading, with their values."""
    old = {"architecture": "residual", "input_size": 96, "age_groups": "adience8", "attention_width": 32,
           "residual_widths": [16, 32, 64, 128], "residual_blocks": [1, 1, 1, 1], "epochs": 3}
    config = TrainConfig.from_dict(old)
    assert (config.schema.input_size, config.schema.age_group_preset, config.epochs) == (96, "adience8", 3)
    assert config.network_options == {"residual": {"widths": (16, 32, 64, 128), "blocks": (1, 1, 1, 1)}}
    with pytest.raises(ValueError, match="schema.input_size is 48 in .* but 96 here"):
        TrainConfig.resolve(dict(old, init_from=parent_run))


def test_export_refuses_a_qat_run_of_another_model(parent_run, tmp_path):
    from faceage_tf import export

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps(TrainConfig(architecture="residual", schema={"input_size": 64})
                                                  .to_dict()))
    with pytest.raises(ValueError, match=f"schema.input_size is 48 in {parent_run} but 64 in {other}"):
        export.export_run(parent_run, str(tmp_path / "out"), qat_run=str(other))


def test_the_serving_crops_recipe_lists_both_prepared_sources_and_the_packaged_models_split():
    """configs/serving_crops.json: the default recipe on crops cut by the serving path, both data
    sets, split as the packaged default model was (its split file, for both sources)."""
    config = TrainConfig.from_file(os.path.join(ROOT, "configs", "serving_crops.json"))
    with open(os.path.join(ROOT, "configs", "default.json")) as f:
        default = TrainConfig.from_dict(json.load(f))
    assert [(s["kind"], s["name"]) for s in config.data_sources()] == [("prepared", "utkface"), ("prepared", "aaf")]
    assert config.schema == default.schema and config.members == default.members and not config.test_source
    differing = {k for k, v in config.to_dict().items() if v != default.to_dict()[k]}
    assert differing == {"sources", "split_file"}
    assert config.split_file == "configs/splits/default.json"
    assert sorted(datasets.read_split_file(os.path.join(ROOT, config.split_file))) == ["aaf", "utkface"]
