"""``python -m evalkit.schemas``: rewrite the published schema files from the code."""

from evalkit.schemas.generate import write_schemas

if __name__ == "__main__":
    for path in write_schemas():
        print(path)
