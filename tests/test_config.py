"""Settings: every field documented, environment overrides, bad values rejected with a clear message."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lendsafe.config import FLAG_VALUES, PROJECT_ROOT, Settings
from lendsafe.decide.decision import REFERENCES
from lendsafe.errors import ConfigurationError, LendSafeError

ENV = ("LENDSAFE_HOME", "LENDSAFE_DATABASE_URL", "LENDSAFE_USE_LLM", "LENDSAFE_CHROMA_URL")


@pytest.fixture
def clean_env(monkeypatch):
    """No LendSafe variables (the suite's conftest sets a database URL of its own)."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_setting_has_help_text():
    table = Settings.help_table()
    assert list(table) == [f.name for f in dataclasses.fields(Settings)]
    undocumented = [name for name, text in table.items() if len(text.strip()) < 10]
    assert not undocumented, f"settings without help text: {undocumented}"


def test_settings_that_read_the_environment_say_so_in_their_help():
    table = Settings.help_table()
    for name, variable in (("home", "LENDSAFE_HOME"), ("database_url", "LENDSAFE_DATABASE_URL"),
                           ("use_llm", "LENDSAFE_USE_LLM"), ("chroma_url", "LENDSAFE_CHROMA_URL")):
        assert variable in table[name], name


def test_defaults_without_environment(clean_env):
    settings = Settings()
    assert settings.dataset == "hmda" and settings.reference == "population"
    assert settings.home == PROJECT_ROOT / "var"
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'audit.db'}"
    assert settings.use_llm is True and settings.chroma_url == ""
    assert settings.models_dir == PROJECT_ROOT / "models" and (settings.models_dir / "risk" / "hmda").is_dir()


def test_home_from_environment_moves_the_default_database(clean_env, tmp_path):
    clean_env.setenv("LENDSAFE_HOME", str(tmp_path))
    settings = Settings()
    assert settings.home == tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path / 'audit.db'}"
    assert settings.ensure_home() == tmp_path and tmp_path.is_dir()


def test_empty_home_variable_means_the_default(clean_env):
    clean_env.setenv("LENDSAFE_HOME", "")
    assert Settings().home == PROJECT_ROOT / "var"


def test_database_url_from_environment_and_explicit_value_wins(clean_env):
    clean_env.setenv("LENDSAFE_DATABASE_URL", "postgresql://u@localhost/lendsafe")
    assert Settings().database_url == "postgresql://u@localhost/lendsafe"
    assert Settings(database_url="sqlite:///x.db").database_url == "sqlite:///x.db"


def test_chroma_url_from_environment(clean_env):
    clean_env.setenv("LENDSAFE_CHROMA_URL", "http://127.0.0.1:8000")
    assert Settings().chroma_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize("text", sorted(FLAG_VALUES))
def test_use_llm_flag_words(clean_env, text):
    clean_env.setenv("LENDSAFE_USE_LLM", text.upper())
    assert Settings().use_llm is FLAG_VALUES[text]


def test_bad_use_llm_value_is_a_clear_configuration_error(clean_env):
    clean_env.setenv("LENDSAFE_USE_LLM", "maybe")
    with pytest.raises(ConfigurationError) as caught:
        Settings()
    message = str(caught.value)
    assert "LENDSAFE_USE_LLM" in message and "'maybe'" in message and "false" in message
    assert isinstance(caught.value, LendSafeError) and isinstance(caught.value, ValueError)


def test_bad_reference_is_rejected_naming_the_choices():
    with pytest.raises(ConfigurationError, match=r"reference must be one of .*population.*cutoff.*got 'average'"):
        Settings(reference="average")
    for reference in REFERENCES:
        assert Settings(reference=reference).reference == reference


def test_paths_are_paths_and_settings_are_frozen(tmp_path):
    settings = Settings(home=str(tmp_path), models_dir=str(tmp_path / "m"))
    assert isinstance(settings.home, Path) and isinstance(settings.models_dir, Path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.dataset = "credit"  # type: ignore[misc]


def test_the_dataset_catalogue_is_read_without_numpy_or_pandas():
    import subprocess
    import sys

    code = ("import sys; from lendsafe.config import builtin_dataset_names, dataset_title, Settings; "
            "names = builtin_dataset_names(); titles = [dataset_title(n) for n in names]; "
            "Settings().risk_model_dir(names[0]); "
            "assert 'pandas' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules); print(titles)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Boston Fed HMDA mortgage applications, 1990" in done.stdout


def test_a_dataset_without_a_spec_title_is_named_by_its_name():
    from lendsafe.config import dataset_title

    assert dataset_title("no-such-dataset") == "no-such-dataset"
