"""gs:// for the Beam job: bounded retries, one-level listing, and storage
that is gone told apart from a file that is bad.

google-cloud-storage retries a failed request for up to 120 s, and Beam's
GCS file system takes that default, with no pipeline option to change it:
with the bucket gone, every object access of a job waited two minutes, and
each note's read failing that way was dead-lettered, so 45 notes took 90
minutes and a whole NSynth run never ended. Here:

* `bound_retries()` makes Beam's GCS calls (its sinks' writes, match,
  delete) give up after RETRY_SECONDS; the launcher and every worker process
  that reads a note call it.
* The job's own reads (notes, examples.json, manifests) and its listing of
  versions go through `read_bytes` and `entries`: one request each, retried
  for RETRY_SECONDS, listing one level with a delimiter instead of matching
  every object below.
* `unavailable(error)` says whether an error means the store cannot be
  reached (no connection, timeouts, server errors after retries): the job
  then stops at once, saying so, instead of blaming one file.
"""

import contextlib
import logging
import posixpath
import re

from apache_beam.io.gcp import gcsio
from apache_beam.io.gcp import gcsio_retry

from nsynth_common import cli

# How long one access to gs:// keeps retrying before the job gives up on
# the store: long enough for GCS's own transient errors (503s, throttling,
# which its backoff rides out within seconds), short enough that a store
# that is gone ends the job within minutes.
RETRY_SECONDS = 60.0
# The most one request may wait for the store to answer.
REQUEST_SECONDS = 30.0

# What google-cloud-storage, google-api-core and requests raise when the
# store does not answer, by class name (the same names appear in the text
# of an error a worker process sends back).
_UNAVAILABLE = ('RetryError', 'ServiceUnavailable', 'GatewayTimeout',
                'InternalServerError', 'BadGateway', 'TransportError',
                'ConnectionError', 'ConnectTimeout', 'ReadTimeout',
                'ConnectionRefusedError', 'NewConnectionError',
                'MaxRetryError', 'StorageUnavailableError')
_UNAVAILABLE_WORDS = re.compile(r'\b(' + '|'.join(_UNAVAILABLE) + r')\b')


class StorageUnavailableError(OSError):
  """The object store did not answer within RETRY_SECONDS; the message
  names the path."""


def is_gcs(path: str) -> bool:
  return path.startswith('gs://')


def _retry():
  from google.cloud.storage.retry import DEFAULT_RETRY
  return DEFAULT_RETRY.with_timeout(RETRY_SECONDS)


_ORIGINAL_GET_RETRY = gcsio_retry.get_retry


def _bounded_get_retry(pipeline_options):
  return _ORIGINAL_GET_RETRY(pipeline_options).with_timeout(RETRY_SECONDS)


def bound_retries() -> None:
  """Makes Beam's GCS file system give up on an access after RETRY_SECONDS
  (in this process; calling it again changes nothing). Beam builds the retry
  of each of its GCS clients with gcsio_retry.get_retry, so bounding what
  that returns bounds every call it makes with it."""
  gcsio_retry.get_retry = _bounded_get_retry


def _chain(error: BaseException | None):
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    for detail in (getattr(error, 'exception_details', None) or {}).values():
      if isinstance(detail, BaseException):
        yield from _chain(detail)
    error = error.__cause__ or error.__context__


def unavailable(error: BaseException) -> bool:
  """Whether `error`, or one it was raised from or wraps, says the store
  could not be reached (not that a file is missing or bad)."""
  return any(type(e).__name__ in _UNAVAILABLE or (
      # A worker process's error comes back as text.
      isinstance(e, RuntimeError) and _UNAVAILABLE_WORDS.search(str(e)))
             for e in _chain(error))


def reason(error: BaseException) -> str:
  """A short reason why the store could not be reached."""
  for e in _chain(error):
    if isinstance(e, ConnectionRefusedError):
      return f'connection refused for {RETRY_SECONDS:g} s'
  return f'no answer within {RETRY_SECONDS:g} s'


def describe(error: BaseException) -> str:
  """What did not answer, for a user: the path and why, when known."""
  for e in _chain(error):
    if isinstance(e, StorageUnavailableError):
      return str(e)
  for e in _chain(error):   # Beam's errors are keyed by the path
    for path in (getattr(e, 'exception_details', None) or {}):
      return f'{path}: {reason(error)}'
  return reason(error)


# Said once, in our words, when no Google credentials are found: Beam looks
# for them with four retries, logging each with its traceback, then says so
# in two lines, before the job's first line.
NO_CREDENTIALS = ('No Google credentials were found, so gs:// is reached '
                  'anonymously (a private bucket needs `gcloud auth '
                  'application-default login` or '
                  'GOOGLE_APPLICATION_CREDENTIALS)')
_CREDENTIAL_LOGGERS = ('apache_beam.utils.retry',
                       'apache_beam.internal.gcp.auth')


def _credentials_lookup_once(record: logging.LogRecord) -> bool:
  message = record.getMessage()
  if '_get_credentials_with_retrys' in message:
    return False
  if message.startswith('Unable to find default credentials'):
    record.msg, record.args, record.exc_info = NO_CREDENTIALS, (), None
  return True


def credentials_lookup_said_once() -> contextlib.AbstractContextManager[None]:
  """Inside, Beam's search for Google credentials says one line, not its
  retries' tracebacks."""
  return cli.logs_filtered(_credentials_lookup_once, _CREDENTIAL_LOGGERS)


def _blob(path: str):
  bucket, name = gcsio.parse_gcs_path(path, object_optional=True)
  # Beam's own client: its credentials, and STORAGE_EMULATOR_HOST honoured.
  return gcsio.GcsIO().client.bucket(bucket), name


def read_bytes(path: str, max_bytes: int | None = None) -> bytes:
  """The object's bytes (at most max_bytes + 1 of them), in one request.

  The process that reads notes also writes shards, through Beam's
  clients: their retries are bounded first (bound_retries).

  Raises:
    FileNotFoundError: no such object.
    StorageUnavailableError: the store did not answer.
  """
  from google.api_core import exceptions
  bound_retries()
  bucket, name = _blob(path)
  try:
    return bucket.blob(name).download_as_bytes(
        end=None if max_bytes is None else max_bytes, raw_download=True,
        timeout=REQUEST_SECONDS, retry=_retry())
  except exceptions.NotFound:
    raise FileNotFoundError(path) from None
  except Exception as e:
    if unavailable(e):
      raise StorageUnavailableError(
          f'{path} could not be read: {reason(e)}') from e
    raise


def entries(directory: str) -> tuple[list[str], list[str]]:
  """(files, directories) directly inside a gs:// directory, by listing
  one level with a delimiter.

  Raises:
    StorageUnavailableError: the store did not answer.
  """
  bucket, name = _blob(directory.rstrip('/') + '/')
  try:
    listed = bucket.client.list_blobs(bucket, prefix=name, delimiter='/',
                                      timeout=REQUEST_SECONDS,
                                      retry=_retry())
    files = [blob.name[len(name):] for blob in listed]
    directories = [prefix[len(name):].rstrip('/')
                   for prefix in listed.prefixes]
  except Exception as e:
    if unavailable(e):
      raise StorageUnavailableError(
          f'{directory} could not be listed: {reason(e)}') from e
    raise
  return ([f for f in files if f and '/' not in f],
          sorted(posixpath.basename(d) for d in directories if d))
