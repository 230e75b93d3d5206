"""task: the handle of a long-running or asynchronous operation."""

from ..decl import RW, RO_RUNTIME as RO, cls, field, message, param
from ..enums import TASK_ALLOWED_OPERATIONS, TASK_STATUS_TYPE
from ..types import DATETIME, FLOAT, STRING, MapOf, Ref, SetOf, NULL_REF, VOID

SMAP = MapOf(STRING, STRING)


TASK = cls(
    "task",
    "Progress and outcome of an operation a client may wait on or cancel.",
    by_name_label=True,
    fields=[
        field("uuid", STRING, RO),
        field("name_label", STRING, RO, ""),
        field("name_description", STRING, RO, ""),
        field("allowed_operations", SetOf(TASK_ALLOWED_OPERATIONS), RO, []),
        field("current_operations", MapOf(STRING, TASK_ALLOWED_OPERATIONS), RO, {}),
        field("created", DATETIME, RO, doc="When the task was made."),
        field("finished", DATETIME, RO, doc="When the task left pending (EPOCH until then)."),
        field("status", TASK_STATUS_TYPE, RO,
              doc="pending until the operation ends; then success, failure or cancelled."),
        field("resident_on", Ref("host"), RO, doc="The host carrying out the operation."),
        field("progress", FLOAT, RO, doc="Fraction done, from 0.0 to 1.0."),
        field("type", STRING, RO, doc="Type name of the result value, once there is one."),
        field("result", STRING, RO, doc="On success, the result encoded as an XML-RPC value."),
        field("error_info", SetOf(STRING), RO,
              doc="On failure, the error code followed by its parameters."),
        field("other_config", SMAP, RW, {}),
        field("subtask_of", Ref("task"), RO, NULL_REF),
        field("subtasks", SetOf(Ref("task")), RO),
        field("backtrace", STRING, RO, "()",
              doc="Diagnostic trace of a failure, as an s-expression."),
    ],
    messages=[
        message("create", [param("label", STRING), param("description", STRING)], Ref("task"), (),
                "Make a pending task owned by this session (HTTP transfers report through one).",
                async_=False),
        message("destroy", [param("self", Ref("task"))], VOID, (),
                "Delete a finished task now, or a pending one as soon as it finishes.", async_=False),
        message("cancel", [param("task", Ref("task"))], VOID, ("OPERATION_NOT_ALLOWED",),
                "Ask a cancellable operation to stop at its next checkpoint; it then ends cancelled.",
                async_=False),
        message("set_status", [param("self", Ref("task")), param("value", TASK_STATUS_TYPE)], VOID, (),
                "Set the status of a task this session owns.", async_=False),
        message("set_progress", [param("self", Ref("task")), param("value", FLOAT)], VOID, (),
                "Set the progress (0.0 to 1.0) of a task this session owns.", async_=False),
        message("set_result", [param("self", Ref("task")), param("value", STRING)], VOID, (),
                "Set the result (an XML-RPC value fragment) of a task this session owns.", async_=False),
        message("set_error_info", [param("self", Ref("task")), param("value", SetOf(STRING))], VOID, (),
                "Set the error (code, then parameters) of a task this session owns.", async_=False),
    ],
)
