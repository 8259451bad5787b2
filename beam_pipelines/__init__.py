"""Apache Beam jobs: NSynth as distributed -> MFCC TFRecords + manifest."""
