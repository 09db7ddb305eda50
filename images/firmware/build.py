"""Build the firmware stage images listed in stages.toml: build.py STAGES_TOML OUT_DIR."""

import sys
import tomllib
from pathlib import Path

from pyhsm.protocol.dice import firmware


def main(stages_toml: Path, out_dir: Path) -> None:
    stages = tomllib.loads(stages_toml.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in firmware.STAGES:
        spec = stages[name]
        payload = (stages_toml.parent / spec["payload"]).read_bytes()
        image = firmware.pack(name, spec["version"], spec["svn"], payload)
        firmware.image_path(out_dir, name).write_bytes(image)
        print(f"{name}: version {spec['version']} svn {spec['svn']} -> {firmware.image_path(out_dir, name)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
