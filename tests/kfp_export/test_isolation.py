"""The KFP adapter stays out of DAGs and operators, and the CLI works without kfp installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dags_and_operators_never_import_the_kfp_adapter():
    code = (
        "import runpy, sys\n"
        f"runpy.run_path({str(ROOT / 'dags' / 'dicom_to_deployment.py')!r})\n"
        "import claimed_airflow.operators\n"
        "loaded = sorted(m for m in sys.modules if m == 'kfp' or m.startswith(('kfp.', 'claimed_airflow.kfp')))\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_cli_registers_export_kfp_without_importing_kfp():
    code = (
        "import sys\n"
        "from claimed_airflow.cli import main\n"
        "try:\n"
        "    main(['export-kfp', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('kfp' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--dag-id" in done.stdout and "--component" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_export_without_kfp_says_how_to_install_it():
    code = (
        "import sys\n"
        "sys.modules['kfp'] = None  # as in an environment without kfp\n"
        "from claimed_airflow.cli import main\n"
        "sys.exit(main(['export-kfp', '--component', 'filter.rows']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "kfp is not installed in this environment; install claimed-airflow[kfp]" in done.stderr
