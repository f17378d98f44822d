"""moto's S3 server, with conditional writes as atomic as S3's.

S3 decides a PutObject with `If-Match` or `If-None-Match: *` atomically:
of two writers racing with the same precondition, exactly one wins. moto
checks the precondition, then stores the object, on a threaded server, so
two racing writers can both win. c2's master state and deploy lock rely on
S3's guarantee, so the tests run moto with each PutObject under one lock.

    python3 moto-server.py -H 127.0.0.1 -p PORT
"""

import threading

from moto.s3.responses import S3Response
from moto.server import main

_lock = threading.Lock()
_put_object = S3Response.put_object


def put_object(self, *args, **kwargs):
    with _lock:
        return _put_object(self, *args, **kwargs)


S3Response.put_object = put_object
main()
