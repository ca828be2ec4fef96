"""Chapter parameters: declared once, parsed once into typed rules, checked before any compute."""

import pytest
import torch

from flatrob.jobs.params import (
    Ascending,
    Bound,
    OneOf,
    ParameterError,
    chapters,
    parameter_spec,
    parse_rule,
    parse_value,
    validate,
)
from helpers import write_cifar


def test_rules_are_parsed_once_into_typed_objects():
    spec = parameter_spec("last-layer-scaling")
    rules = spec["scales"].rules
    assert [type(r).__name__ for r in rules] == ["Bound", "Ascending", "Contains"]
    assert rules[0] == Bound("above 0", "above", 0.0) and isinstance(rules[1], Ascending)
    assert isinstance(spec["dataset"].rules[0], OneOf) and "fashion-mnist" in spec["dataset"].rules[0].choices
    assert parameter_spec("last-layer-scaling") == spec  # read once per version of the file
    with pytest.raises(ValueError, match="not understood"):
        parse_rule("at least a few")
    with pytest.raises(ValueError, match="no known set"):
        parse_rule("one of: PLANETS")


def test_every_chapter_parameter_line_parses_and_has_a_device():
    for name in chapters():
        spec = parameter_spec(name)
        if name not in ("intro", "reproduction", "sweeps", "reproducibility", "paper", "cite"):
            assert [r.text for r in spec["device"].rules] == ["one of: DEVICES"], name
        for p in spec.values():
            assert p.describe().startswith(f"{p.name} = ")


def test_validation_names_the_parameter():
    assert set(validate("uncanny-valley", {})) == set(parameter_spec("uncanny-valley"))
    with pytest.raises(ParameterError, match="unknown parameter.*'stepz'.*accepted: dataset"):
        validate("uncanny-valley", {"stepz": 3})
    with pytest.raises(ParameterError, match="'attack_steps'.*must be an integer"):
        validate("uncanny-valley", {"attack_steps": "many"})
    with pytest.raises(ParameterError, match="'attack_steps'.*must be >= 1; got 0"):
        validate("uncanny-valley", {"attack_steps": 0})
    one_of = "'dataset'.*must be one of \\['fashion-mnist', 'fashion-mnist-3x32', 'mnist'"
    with pytest.raises(ParameterError, match=one_of):
        validate("uncanny-valley", {"dataset": "emnist"})
    with pytest.raises(ParameterError, match="'augment'.*must be a boolean"):
        validate("uncanny-valley", {"augment": 1})
    with pytest.raises(ParameterError, match="unknown chapter"):
        validate("no-such-chapter", {})
    assert validate("uncanny-valley", {"attack_eps": 1})["attack_eps"] == 1.0  # an int is a fine float


def test_numbers_in_any_syntax_and_never_nan_or_infinite():
    assert validate("uncanny-valley", {"lr": parse_value("1e-3")})["lr"] == 0.001
    assert validate("uncanny-valley", {"lr": "1E-3"})["lr"] == 0.001  # as papermill may pass it
    assert validate("local-bound", {"radii": parse_value("[1e-2, 0.1]")})["radii"] == [0.01, 0.1]
    assert validate("uncanny-valley", {"attack_steps": parse_value("1_000")})["attack_steps"] == 1000
    assert validate("uncanny-valley", {"epochs": parse_value("1e3")})["epochs"] == 1000  # an integer, in any syntax
    assert validate("uncanny-valley", {"epochs": 30.0})["epochs"] == 30
    with pytest.raises(ParameterError, match="'epochs'.*must be an integer"):
        validate("uncanny-valley", {"epochs": 2.5})
    for bad in (".nan", ".inf", "-.inf", "nan", "inf"):
        with pytest.raises(ParameterError, match="'attack_eps'.*finite"):
            validate("uncanny-valley", {"attack_eps": parse_value(bad)})
    with pytest.raises(ParameterError, match="'radii'.*finite"):
        validate("local-bound", {"radii": parse_value("[0.1, .inf]")})
    with pytest.raises(ParameterError, match="'lr'.*must be > 0; got -0.001"):
        validate("uncanny-valley", {"lr": parse_value("-1e-3")})


def test_list_rules_run_before_any_compute():
    with pytest.raises(ParameterError, match="'scales'.*must contain 1"):
        validate("last-layer-scaling", {"scales": [0.5, 2.0]})
    with pytest.raises(ParameterError, match="'scales'.*strictly ascending"):
        validate("last-layer-scaling", {"scales": [1.0, 0.5]})
    with pytest.raises(ParameterError, match="'scales'.*must start at 1"):
        validate("gradient-masking", {"scales": [2.0, 5.0]})
    with pytest.raises(ParameterError, match="'scales' of chapter 'local-bound': every item must be > 0; got -1.0"):
        validate("local-bound", {"scales": [-1.0, 1.0]})
    with pytest.raises(
        ParameterError,
        match="'symbolic_sizes' of chapter 'closed-form': every item must be one of \\[2, 3, 4, 5, 6\\]; got 9",
    ):
        validate("closed-form", {"symbolic_sizes": [2, 9]})
    with pytest.raises(ParameterError, match="'folds' of chapter 'detector' must be <= 20"):
        validate("detector", {"folds": 21})
    # a list of words: every item one of the choices, none repeated, never a number
    assert validate("detector", {"trainings": ["clean"]})["trainings"] == ["clean"]
    with pytest.raises(ParameterError, match="'trainings'.*every item must be one of"):
        validate("detector", {"trainings": ["clean", "robust"]})
    with pytest.raises(ParameterError, match="'trainings'.*must be a list of words; got 1"):
        validate("detector", {"trainings": [1]})
    with pytest.raises(ParameterError, match="'trainings'.*must not repeat"):
        validate("detector", {"trainings": ["clean", "clean"]})


def test_impossible_settings_fail_before_the_kernel(tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match="needs parameter 'data_root'"):
        validate("uncanny-valley", {"dataset": "cifar10"})
    with pytest.raises(ParameterError, match="lacks data_batch_1.*nothing is downloaded"):
        validate("uncanny-valley", {"dataset": "cifar10", "data_root": str(tmp_path)})
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="'device'.*CUDA is not available"):
            validate("basin", {"device": "cuda"})
    # a data set the architecture cannot take, before any kernel starts
    with pytest.raises(ParameterError, match="'dataset' and 'architecture'.*do not fit.*small-cnn.*\\(1, 28, 28\\)"):
        validate("uncanny-valley", {"dataset": "digits"})
    assert validate("uncanny-valley", {"dataset": "digits", "architecture": "digits-cnn"})["dataset"] == "digits"
    # CIFAR files that are present but corrupt: refused by their checksums, unless the user says they made them
    write_cifar(tmp_path / "c", "cifar10")
    with pytest.raises(ParameterError, match="does not match the official checksum.*--unchecked-data"):
        validate("uncanny-valley", {"dataset": "cifar10", "data_root": str(tmp_path / "c"), "architecture": "resnet18"})
    monkeypatch.setenv("FLATROB_CIFAR_CHECKSUM", "0")
    assert (
        validate(
            "uncanny-valley", {"dataset": "cifar10", "data_root": str(tmp_path / "c"), "architecture": "resnet18"}
        )["dataset"]
        == "cifar10"
    )


def test_the_shared_parameters_read_the_same_in_every_experiment_chapter():
    """The data and training parameters repeat in each experiment chapter's parameters cell, which papermill and the
    reader need literally; they must not drift apart: the same default, the same words, the same rules."""
    from flatrob.jobs.params import chapters, parameter_spec

    shared = ("dataset", "data_root", "architecture", "seed", "n_train", "epochs", "lr", "batch_size", "augment")
    experiments = [name for name, path in chapters().items() if path.parts[0] == "experiments"]
    assert len(experiments) == 7
    specs = {name: parameter_spec(name) for name in experiments}
    for key in shared:
        seen = {(s[key].default, tuple(r.describe() for r in s[key].rules)) for s in specs.values() if key in s}
        assert len(seen) == 1, f"{key} differs between chapters: {seen}"
    adversarial = [s for s in specs.values() if "adv_steps" in s]
    for key in ("adv_eps", "adv_steps", "adv_step_size"):
        assert len({(s[key].default, s[key].doc) for s in adversarial}) == 1, key


def test_the_checked_values_replace_the_injected_ones_in_the_kernel(monkeypatch):
    """Under plain papermill `-p epochs 1e3` puts the float 1000.0 in the kernel; the chapter's one set-up call puts
    the checked integer back, so every cell after it reads the typed value."""
    from flatrob.jobs.chapter import setup_chapter

    namespace = {"epochs": 1e3, "n_check": 8.0, "symbolic_sizes": [2, 3]}
    ctx = setup_chapter("closed-form", namespace)
    assert namespace["epochs"] == 1000 and isinstance(namespace["epochs"], int)
    assert isinstance(namespace["n_check"], int) and ctx.params["epochs"] == 1000
    assert "device" in namespace  # the defaults the cell would have set are there too


def test_a_chapters_parameters_as_a_readers_table():
    from flatrob.jobs.params import parameter_spec, parameters_frame

    spec = parameter_spec("basin")
    table = parameters_frame("basin", {"epochs": 10, "architecture": "wrn-10-1"}).set_index("parameter")
    assert list(table.index) == list(spec)  # every parameter, in the cell's order
    assert table.loc["epochs", "this run"] == "10" and table.loc["epochs", "default"] == str(spec["epochs"].default)
    assert table.loc["adv_eps", "this run"] == "8/255" and table.loc["adv_eps", "default"] == ""
    assert "at least 1" in table.loc["epochs", "what it is"] and table.loc["seed", "default"] == ""


def test_papermill_reads_every_parameter_of_every_chapter(tmp_path):
    """``papermill --help-notebook`` and papermill's own checks read a chapter's parameters cell line by line; a line
    it cannot parse (a second "=" in its comment, say) makes papermill warn "Passed unknown parameter" whenever a user
    sets it. Every chapter's parameters, as papermill reads them, are the chapter's own."""
    import jupytext
    import papermill

    from flatrob.jobs.params import chapter_path, chapters, parameter_spec

    for name in chapters():
        spec = parameter_spec(name)
        if not spec:
            continue
        nb = tmp_path / f"{name}.ipynb"
        jupytext.write(jupytext.read(chapter_path(name)), nb)
        seen = papermill.inspect_notebook(str(nb))
        assert set(seen) == set(spec), (name, sorted(set(spec) ^ set(seen)))
