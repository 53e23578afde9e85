"""Serving model files over Foundry's ML-Server protocol (``nodegraph serve``).

One GPU machine runs the models; Nuke's MLClient plugin and nodegraph's RemoteInference node on
GPU-less machines send it frames and get the results back. ``protocol`` holds the wire format
(framing, images, errors), ``mlserver_pb2`` the messages generated from ``mlserver.proto``,
``catalog`` the models offered, ``server`` the server, ``client`` a client.
"""

from .catalog import Catalog, OptionError, ServedModel, UnknownModelError
from .protocol import DEFAULT_PORT, ProtocolError, RemoteError, ServeError, ServerUnavailableError
from .server import MLServer, ServerConfig, serve

__all__ = ["Catalog", "DEFAULT_PORT", "MLServer", "OptionError", "ProtocolError", "RemoteError", "ServeError",
           "ServedModel", "ServerConfig", "ServerUnavailableError", "UnknownModelError", "serve"]
