"""Keras trainer: tf.data over the Beam job's TFRecords, models, evaluation.

What the floor above (serving) and the benchmarks may use of it, a trained
job as the trainer leaves it:
  job_layout  - what a job directory holds: its settings, its best model,
                whether its training finished
  models      - `load` a trained model (our layers known), and
                `non_finite_weight`, whether training left NaN or Inf in it
  layers      - `input_names`: the features a trained model reads
The rest (fitting, callbacks, the input pipeline, the report) is the
trainer's own.
"""
