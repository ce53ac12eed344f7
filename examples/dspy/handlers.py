"""A DSPy program served by snakepen: one program per session, its answer
streamed with `dspy.streamify` (the program's steps as they happen, then
the final `Prediction`).

It runs offline on DSPy's `DummyLM`: no network, no API key. Point
`make_lm` at a real model (`dspy.LM("openai/gpt-4o-mini")`) to use one.

    just demo-dspy        # serves this module and streams an answer with curl
"""

import dspy
from dspy.utils.dummies import DummyLM


class Writer(dspy.Module):
    """Outlines an answer, then writes it: two steps, each a status message."""

    def __init__(self):
        super().__init__()
        self.outline = dspy.Predict("question -> outline")
        self.write = dspy.Predict("question, outline -> answer")
        self.asked = 0  # what the session's program remembers between calls

    def forward(self, question):
        self.asked += 1
        outline = self.outline(question=question).outline
        return self.write(question=question, outline=outline)


class Steps(dspy.streaming.StatusMessageProvider):
    """What the stream says while the program works."""

    def module_start_status_message(self, instance, inputs):
        return "%s started" % type(instance).__name__

    def module_end_status_message(self, outputs):
        return "step done"


def make_lm(question, asked):
    """The language model of one answer: offline, canned, and saying which
    question of its session it answers."""
    return DummyLM([
        {"outline": "what the question asks; a short answer"},
        {"answer": "Answer %d of this session, to %r." % (asked, question)},
    ])


_programs = {}  # session id -> its Writer


async def ask(question, session="default"):
    """Streams the program's status messages (`{"message": ...}`), then its
    Prediction (`{"answer": ...}`). The session's program is kept in this
    worker: with strict affinity, a session's calls all come here."""
    program = _programs.setdefault(session, Writer())
    stream = dspy.streamify(program, status_message_provider=Steps())
    with dspy.context(lm=make_lm(question, program.asked + 1)):
        async for chunk in stream(question=question):
            yield chunk


def sessions():
    """The sessions this worker holds a program for."""
    return sorted(_programs)
