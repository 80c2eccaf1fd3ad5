"""Task plugins: what the search engine needs to know about one kind of learning problem."""

from loopml.services.trainer.core.tasks.base import Problem, Task
from loopml.services.trainer.core.tasks.tabular import TabularTask

TASKS: dict[str, type[Task]] = {"tabular": TabularTask}

__all__ = ["TASKS", "Problem", "TabularTask", "Task"]
