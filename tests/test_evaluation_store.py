"""The results store's artifact hashes: code hashes cover every module of a package."""
import hashlib

from lendsafe.config import PACKAGE_DIR
from lendsafe.evaluation.store import CODE_FILES, code_sha256, writer_hashes


def test_code_hashes_cover_every_module_of_a_package(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("A = 1\n")
    (package / "sub" / "b.py").write_text("B = 2\n")
    first = code_sha256(package)
    (package / "sub" / "b.py").write_text("B = 3\n")
    second = code_sha256(package)
    (package / "c.py").write_text("")
    assert len({first, second, code_sha256(package)}) == 3
    assert code_sha256(package / "a.py") == hashlib.sha256(b"A = 1\n").hexdigest()
    assert "explain/verify" in CODE_FILES and "decide/catalog.py" in CODE_FILES
    assert all((PACKAGE_DIR / name).exists() for name in CODE_FILES)


def test_writer_hashes_come_from_the_writer_given_and_nothing_for_the_composer():
    class Described:
        def describe(self):
            return {"base_sha256": "b" * 64, "adapter_sha256": "a" * 64, "dtype": "int8"}

    assert writer_hashes("template", None, None, {}) == {}
    assert writer_hashes("lora", True, None, {"lora": Described()}) == {"base_sha256": "b" * 64, "adapter_sha256": "a" * 64}
