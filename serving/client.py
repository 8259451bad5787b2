r"""Asks a running TF Serving for the instrument family of audio files.

Usage:
  nsynth-client --host=localhost [--protocol=rest|grpc]
      [--port=8501|8500] [--model_name=nsynth_instrument] [--version=N]
      [--json] [--timeline] [--timeout=30] FILE [FILE ...]

Each file is decoded here first, by nsynth_contracts.audio_decoding, the
decoder of the Beam job and nsynth-predict (WAV, FLAC, OGG or MP3, any rate,
mono or not), so a file the Beam job refuses is refused before any request,
in the same words. Then the served export's own contract (its
`serving_contract` signature) says how to prepare them: the rate, the clip
that is a note, the windows and length of a recording, and the WAV
encodings its graph decodes. Notes are sent together, each longer recording
alone. A WAV the export's graph decodes is sent as its bytes, to
`serving_wav` (notes) or `serving_long_wav`, which decode them to the same
samples in the graph; anything else as the decoded float samples, to
`serving_default` or `serving_long_audio` (serving.tf_serving).

--timeout bounds each whole request, from connecting to the last byte of the
reply, and a reply larger than its request's answers can be is refused.
Names and messages from the server are printed as printable text only.
Server errors are printed as the server's own words, not a stack trace.
"""

from absl import flags

from nsynth_common import cli
from serving import naming


def _define_flags() -> None:
  flags.DEFINE_string('host', 'localhost', 'TF Serving host.')
  flags.DEFINE_enum('protocol', 'rest', ['rest', 'grpc'],
                    'REST (port 8501) or gRPC (port 8500).')
  flags.DEFINE_integer('port', None, 'Default: 8501 (REST), 8500 (gRPC).',
                       lower_bound=1, upper_bound=65535)
  flags.DEFINE_string('model_name', naming.DEFAULT_MODEL_NAME,
                      'The model name TF Serving serves.')
  flags.register_validator('model_name', naming.is_model_name,
                           message=f'--model_name {naming.MESSAGE}')
  flags.DEFINE_integer('version', None, 'A model version (default: the '
                       'newest TF Serving has).')
  flags.DEFINE_float('timeout', 30.0, 'Seconds for each whole request, from '
                     'connecting to the last byte of the reply.',
                     lower_bound=0.0)
  flags.DEFINE_integer('top_k', 3, 'Families to show per file.',
                       lower_bound=1)
  flags.DEFINE_boolean('json', False, 'Print JSON instead of a table.')
  flags.DEFINE_boolean('timeline', False, 'For recordings longer than a '
                       'note, also show each window.')


def _main(argv: list[str]) -> None:
  files = argv[1:]
  if not files:
    raise cli.UserError('name at least one audio file')
  # Imported here, not at the top: TensorFlow reads its log level when it
  # is imported, and cli.run sets it before calling this.
  from serving import client_session
  from serving import results
  options = flags.FLAGS
  port = options.port or (8501 if options.protocol == 'rest' else 8500)
  session = client_session.Session(
      options.protocol, options.host, port, options.model_name,
      options.version, options.timeout)
  with cli.one_line_errors(client_session.FileError,
                           client_session.ServerError):
    decoded = session.decode_first(files)
    predictions = session.predict(files, decoded, options.top_k)
  print(results.to_json(predictions, options.timeline) if options.json
        else results.to_table(predictions, options.timeline))


def main() -> None:
  """Console entry point (nsynth-client)."""
  cli.run(_define_flags, _main, tensorflow=True)


if __name__ == '__main__':
  main()
