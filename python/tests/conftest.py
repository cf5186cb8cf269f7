"""pytest's own `pytester`, to run test files that use the regbox plugin as a user's would; and strict
reports, so that a field the crate's JSON has and a report class lacks fails the tests."""

import regbox.reports

pytest_plugins = ["pytester"]

regbox.reports.STRICT = True
