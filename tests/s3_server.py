"""An S3-compatible server on localhost for the object storage tests.

`S3Server` runs moto's server (`ThreadedMotoServer`) on a free port and, in
front of it, `RecordingProxy`: a threaded HTTP proxy that forwards every request
to moto and records what the client asked (method, path, `Range` header) and
the most requests it had in flight at once. The proxy can also answer some
requests itself, as S3 does when it throttles (503 SlowDown) or refuses
(403 AccessDenied), with S3's XML error body.

The build under test is pointed at the proxy through the standard variables
botocore honours (`client_environment`); the tests upload through
`S3Server.client`, straight to moto.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator

import boto3
from moto.server import ThreadedMotoServer

ACCESS_KEY = 'testing'
SECRET_KEY = 'testing'
REGION = 'us-east-1'

# Hop-by-hop headers: they describe one connection, not the message.
_HOP_BY_HOP = {
    'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization',
    'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade',
}


def error_body(code: str, message: str, resource: str = '') -> bytes:
  """An S3 error response body (`<Error><Code>...`)."""
  return (
      '<?xml version="1.0" encoding="UTF-8"?>\n'
      f'<Error><Code>{code}</Code><Message>{message}</Message>'
      f'<Resource>{resource}</Resource><RequestId>4442587FB7D0A2F9</RequestId>'
      '<HostId>tests-proxy</HostId></Error>'
  ).encode()


SLOW_DOWN = (503, 'SlowDown', 'Please reduce your request rate.')
ACCESS_DENIED = (403, 'AccessDenied', 'Access Denied')


@dataclasses.dataclass(frozen=True)
class Request:
  """One request the proxy received, and how it was answered."""

  method: str
  path: str  # Without the query.
  query: str
  range: str | None
  status: int

  @property
  def is_object_get(self) -> bool:
    """A GET of an object's bytes (path-style `/bucket/key`), not a listing."""
    return self.method == 'GET' and len([s for s in self.path.split('/') if s]) >= 2


class RecordingProxy:
  """Forwards HTTP requests to `upstream` ('127.0.0.1:port'), recording them.

  Attributes:
    requests: Every request answered since the last `reset`, in order of answer.
    max_in_flight: The most requests being handled at once since `reset`.
    object_get_delay_s: Each GET of object bytes is held this long before it is
      forwarded, so that requests a client sends together overlap here.
    fail_object_gets: Ordinals (1-based, counted since `reset`) of the GETs of
      object bytes to answer with `failure` instead of forwarding them.
    failure: (status, code, message) of those answers.
    deny_all: Answer every request with 403 AccessDenied.
  """

  def __init__(self, upstream: str):
    self.upstream = upstream
    self._lock = threading.Lock()
    self.object_get_delay_s = 0.0
    self.failure = SLOW_DOWN
    self.deny_all = False
    self.fail_object_gets: set[int] = set()
    self.reset()
    proxy = self

    class Handler(http.server.BaseHTTPRequestHandler):
      protocol_version = 'HTTP/1.1'

      def log_message(self, *args):  # Quiet.
        pass

      def do_GET(self):
        proxy._handle(self)

      do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    self._server.daemon_threads = True
    self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

  @property
  def endpoint_url(self) -> str:
    host, port = self._server.server_address[:2]
    return f'http://{host}:{port}'

  def start(self) -> None:
    self._thread.start()

  def stop(self) -> None:
    self._server.shutdown()
    self._server.server_close()
    self._thread.join()

  def reset(self) -> None:
    """Forgets the requests recorded, and answers everything normally again."""
    with self._lock:
      self.requests: list[Request] = []
      self.max_in_flight = 0
      self._in_flight = 0
      self._object_gets = 0
    self.object_get_delay_s = 0.0
    self.fail_object_gets = set()
    self.failure = SLOW_DOWN
    self.deny_all = False

  # What was recorded.

  def object_gets(self) -> list[Request]:
    with self._lock:
      return [r for r in self.requests if r.is_object_get]

  def ranged_gets(self) -> list[Request]:
    return [r for r in self.object_gets() if r.range]

  def answered(self, status: int) -> list[Request]:
    with self._lock:
      return [r for r in self.requests if r.status == status]

  # Handling.

  def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
    url = urllib.parse.urlsplit(handler.path)
    body = _read_body(handler)
    with self._lock:
      self._in_flight += 1
      self.max_in_flight = max(self.max_in_flight, self._in_flight)
      record = Request(handler.command, url.path, url.query, handler.headers.get('Range'), 0)
      failure = None
      if self.deny_all:
        failure = ACCESS_DENIED
      elif record.is_object_get:
        self._object_gets += 1
        if self._object_gets in self.fail_object_gets:
          failure = self.failure
      delay = self.object_get_delay_s if record.is_object_get else 0.0
    try:
      if failure:
        status, code, message = failure
        headers = [('Content-Type', 'application/xml')]
        data = error_body(code, message, url.path)
      else:
        if delay:
          time.sleep(delay)
        status, headers, data = self._forward(handler, body)
      with self._lock:  # Recorded before the client can see the answer.
        self.requests.append(dataclasses.replace(record, status=status))
      self._reply(handler, status, headers, data)
    finally:
      with self._lock:
        self._in_flight -= 1

  def _forward(self, handler, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
    connection = http.client.HTTPConnection(self.upstream, timeout=60)
    try:
      headers = {
          name: value for name, value in handler.headers.items()
          if name.lower() not in _HOP_BY_HOP
      }
      if body is not None:
        headers['Content-Length'] = str(len(body))
      connection.request(handler.command, handler.path, body=body, headers=headers)
      response = connection.getresponse()
      data = response.read()
      return response.status, response.getheaders(), data
    finally:
      connection.close()

  @staticmethod
  def _reply(handler, status: int, headers, data: bytes) -> None:
    handler.send_response_only(status)
    length = None
    for name, value in headers:
      if name.lower() in _HOP_BY_HOP or name.lower() in ('date', 'server'):
        continue
      if name.lower() == 'content-length':
        length = value
        continue
      handler.send_header(name, value)
    handler.send_header('Date', handler.date_time_string())
    if handler.command == 'HEAD':
      # No body; the length is the object's, as upstream said.
      handler.send_header('Content-Length', length if length is not None else '0')
      handler.end_headers()
    else:
      handler.send_header('Content-Length', str(len(data)))
      handler.end_headers()
      handler.wfile.write(data)
    handler.wfile.flush()


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes | None:
  """The request's body (chunked or sized); None when it has none."""
  if handler.headers.get('Transfer-Encoding', '').lower() == 'chunked':
    chunks = []
    while True:
      size = int(handler.rfile.readline().split(b';')[0].strip(), 16)
      if size == 0:
        while handler.rfile.readline() not in (b'\r\n', b'\n', b''):
          pass  # Trailers.
        return b''.join(chunks)
      chunks.append(handler.rfile.read(size))
      handler.rfile.readline()
  length = handler.headers.get('Content-Length')
  if length is None:
    return None
  return handler.rfile.read(int(length))


class S3Server:
  """moto's S3 on a free localhost port, with a `RecordingProxy` in front."""

  def __init__(self):
    self._moto = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
    self.proxy: RecordingProxy | None = None

  def start(self) -> 'S3Server':
    # moto's server logs every request at INFO.
    logging.getLogger('werkzeug').setLevel(logging.WARNING)
    self._moto.start()
    host, port = self._moto.get_host_and_port()
    self.moto_endpoint_url = f'http://{host}:{port}'
    self.proxy = RecordingProxy(f'{host}:{port}')
    self.proxy.start()
    self.client = boto3.client(
        's3',
        endpoint_url=self.moto_endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    return self

  def stop(self) -> None:
    if self.proxy is not None:
      self.proxy.stop()
    self._moto.stop()

  @property
  def endpoint_url(self) -> str:
    """Where the build under test sends its requests: the proxy."""
    return self.proxy.endpoint_url

  def client_environment(self) -> dict[str, str | None]:
    """The variables that point botocore (boto3, s3fs) at the proxy, with the
    test credentials and no user configuration (None: unset it)."""
    return {
        'AWS_PROFILE': None,
        'AWS_SESSION_TOKEN': None,
        'AWS_CONFIG_FILE': '/nonexistent/aws-config',
        'AWS_SHARED_CREDENTIALS_FILE': '/nonexistent/aws-credentials',
        'AWS_EC2_METADATA_DISABLED': 'true',
        'AWS_ENDPOINT_URL': self.endpoint_url,
        'AWS_ENDPOINT_URL_S3': self.endpoint_url,
        'AWS_ACCESS_KEY_ID': ACCESS_KEY,
        'AWS_SECRET_ACCESS_KEY': SECRET_KEY,
        'AWS_DEFAULT_REGION': REGION,
    }

  def create_bucket(self, bucket: str) -> None:
    self.client.create_bucket(Bucket=bucket)


def running() -> Iterator[S3Server]:
  """A started `S3Server`, stopped when the generator is closed (for fixtures)."""
  server = S3Server().start()
  try:
    yield server
  finally:
    server.stop()
