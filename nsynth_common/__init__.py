"""What every command of the project shares, and no contract depends on.

The lowest package: it imports none of the project's others, and each of
them may import it (nsynth_common <- nsynth_contracts <- beam_pipelines <-
trainer <- serving). Nothing here defines data; changing it changes how a
command behaves, never what a dataset or an export holds:
  cli             - quiet logs, one-line errors, Ctrl-C and a full disk said
                    in one line, absl start-up
  disk_space      - a full disk recognised, whichever library was writing
  native_stderr   - file descriptor 2 sent nowhere while native code prints
  storage         - the one file-system layer: one level listed, links never
                    followed, local or remote
  directory_lock  - one run per trainer job directory or model directory (a
                    lock, or a claim object on gs://)
  dataclass_json  - frozen dataclasses to JSON, and one strict reader back
"""
