"""pytest's own `pytester`, to run test files that use the regbox plugin as a user's would."""

pytest_plugins = ["pytester"]
