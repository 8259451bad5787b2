"""Refusing a request inside the serving graph, in our words.

A refusal must hold through TF Serving's `Session::Run`, which runs the graph
after Grappler has rewritten it, and must reach the client as our sentence,
not TensorFlow's ("Tensor had NaN values", "Data too short when trying to
read string").
"""

import tensorflow as tf


def require(value: tf.Tensor, condition: tf.Tensor, message) -> tf.Tensor:
  """`value`, passed on only if `condition` holds; else INVALID_ARGUMENT.

  The check is a data dependency: `value` flows out of a `tf.cond` on the
  condition, whose refusing branch runs an Assert, so nothing computed from
  the result can run before the check. (Checks hung on control dependencies
  were reordered by graph optimisation: a later op failed first, in
  TensorFlow's words.) The client reads `assertion failed: [<message>]`,
  and TF Serving adds the node's name on the lines after it; no other words.

  Args:
    value: tensor to pass on.
    condition: bool scalar.
    message: what the client reads: a str, or a function returning a
      string scalar tensor (built only in the refusing branch), for messages
      that carry values of the request.
  """
  def refuse():
    text = message() if callable(message) else tf.constant(message)
    check = tf.debugging.Assert(condition, [text], summarize=1)
    with tf.control_dependencies([check]):
      return tf.identity(value)

  return tf.cond(condition, lambda: tf.identity(value), refuse)


def fill(template: str, *values) -> tf.Tensor:
  """A message template's `{}` fields filled with `values` (string or
  integer tensors, or Python values), as `template.format` fills them."""
  parts = template.split('{}')
  if len(parts) != len(values) + 1:
    raise ValueError(f'{template!r} takes {len(parts) - 1} values')
  pieces = [parts[0]]
  for value, text in zip(values, parts[1:]):
    value = tf.convert_to_tensor(value)
    pieces += [value if value.dtype == tf.string else
               tf.strings.as_string(value), text]
  return tf.strings.join(pieces)


def seconds_text(seconds: tf.Tensor) -> tf.Tensor:
  """audio_limits.seconds_text in the graph: float64 seconds rounded up to a
  tenth, as a string tensor."""
  tenths = tf.math.ceil(tf.round(seconds * 1e7) / 1e6)
  return tf.strings.as_string(tenths / 10.0, precision=1)
