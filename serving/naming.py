"""What TF Serving accepts as a model name: one directory, never a path.

TF Serving serves `<base>/<name>/<version>/` and puts the name in its REST
URL, so a name is letters, digits, `_`, `.` and `-`, not starting with a
dot (`..` would leave the base; a space breaks the URL).
"""

import re

DEFAULT_MODEL_NAME = 'nsynth_instrument'
MODEL_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]*')
MESSAGE = ('must be a plain name: letters, digits, _ . -, not starting with '
           'a dot')


def is_model_name(name: str | None) -> bool:
  return bool(MODEL_NAME.fullmatch(name or ''))
