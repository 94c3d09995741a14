"""beehive: named modules as pykka actors with bounded mailboxes, KubeEdge-style messages."""

from beehive.codec import decode, encode
from beehive.deadletters import DeadLetter
from beehive.errors import (
    AdminError,
    BeehiveError,
    ConfigError,
    DuplicateModuleError,
    GroupSendError,
    MailboxFullError,
    MessageDecodeError,
    MessageEncodeError,
    ModuleStoppedError,
    SyncTimeoutError,
    UnknownGroupError,
    UnknownModuleError,
)
from beehive.hive import Hive, ModuleInfo, StopReport
from beehive.mailbox import MailboxStats, WhenFull
from beehive.message import OK, Header, JsonValue, Message, Operation, Route
from beehive.module import Module, ModuleContext
from beehive.spec import MailboxSpec, RestartPolicy, RestartSpec

__all__ = [
    "OK",
    "AdminError",
    "BeehiveError",
    "ConfigError",
    "DeadLetter",
    "DuplicateModuleError",
    "GroupSendError",
    "Header",
    "Hive",
    "JsonValue",
    "MailboxFullError",
    "MailboxSpec",
    "MailboxStats",
    "Message",
    "MessageDecodeError",
    "MessageEncodeError",
    "Module",
    "ModuleContext",
    "ModuleInfo",
    "ModuleStoppedError",
    "Operation",
    "RestartPolicy",
    "RestartSpec",
    "Route",
    "StopReport",
    "SyncTimeoutError",
    "UnknownGroupError",
    "UnknownModuleError",
    "WhenFull",
    "decode",
    "encode",
]
