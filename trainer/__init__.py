"""Keras trainer: tf.data over the Beam job's TFRecords, models, evaluation."""
