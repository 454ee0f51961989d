"""A dtPyAppFramework-style application moved to tresor.

The framework's ``Settings`` resolved ``SEC/`` strings from its keystore and
``ENV/`` strings from the environment, anywhere in ``config.yaml``. With
tresor the config stays as it is; ``tresor.render`` does the resolving, and
the keystore's secrets live in tresor (put there by ``tresor import dtpy``
or ``tresor set``). A missing secret stops the app with the key path,
instead of handing on the literal ``SEC/...`` text as a password.

    python app.py [config.yaml]

Prints what it would connect to, never a secret value.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

import tresor


def load_settings(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    return tresor.render(raw)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("config.yaml")
    try:
        settings = load_settings(path)
    except tresor.NotFound as e:
        print(f"inventory-service: configuration incomplete: {e}", file=sys.stderr)
        return e.exit_code
    db = settings["database"]
    print(f"database {db['user']}@{db['host']}:{db['port']} password: {len(db['password'])} chars")
    for api in settings["apis"]:
        print(f"api {api['name']} at {api['url']} key: {len(api['key'])} chars")
    print(f"workers: {int(settings['workers'])}")
    print(f"note: {settings['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
