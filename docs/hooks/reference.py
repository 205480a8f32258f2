"""MkDocs hook: add the reference pages generated from the code (claimed_airflow.reference)."""

from mkdocs.structure.files import File


def on_files(files, config):
    from claimed_airflow.reference import PAGES

    for path, page in PAGES.items():
        files.append(File.generated(config, path, content=page()))
    return files
