"""FastAPI dependencies: the process's store and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from assessment_store.consistency import bind_caller
from assessment_store.http.auth import Principal, Role, authenticate
from assessment_store.service import AssessmentStore

WRITERS = (Role.PRODUCER, Role.ADMIN)


# Both are async on purpose: they do no I/O, and FastAPI runs a sync dependency in
# the thread pool, a hand-off that costs more than the work.
async def store_of(request: Request) -> AssessmentStore:
    store: AssessmentStore = request.app.state.store
    return store


async def principal_of(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <JWT>")] = None,
) -> Principal:
    secret: str = request.app.state.jwt_secret
    caller = authenticate(secret, authorization, max_lifetime=request.app.state.jwt_max_lifetime)
    # Read-your-writes per token subject: this request's writes and replica reads are
    # its subject's (the request's own context, copied into the endpoint's thread).
    bind_caller(caller.subject)
    return caller


async def writer_of(caller: Annotated[Principal, Depends(principal_of)]) -> Principal:
    """A caller allowed to change assessments. A dependency, so a viewer is refused
    (403) before its body is even validated: it cannot make the API do that work."""
    caller.require(*WRITERS)
    return caller


async def admin_of(caller: Annotated[Principal, Depends(principal_of)]) -> Principal:
    """A caller allowed to change anyone's assessments, checked before the body is."""
    caller.require(Role.ADMIN)
    return caller


Store = Annotated[AssessmentStore, Depends(store_of)]
Caller = Annotated[Principal, Depends(principal_of)]
Writer = Annotated[Principal, Depends(writer_of)]
Admin = Annotated[Principal, Depends(admin_of)]
