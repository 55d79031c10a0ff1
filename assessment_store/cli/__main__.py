"""``python -m assessment_store.cli`` is the ``assessment-store`` command."""

from assessment_store.cli import main

main()
