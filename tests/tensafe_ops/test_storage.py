from tensafe_ops.storage import StateStore, create_engine, migrate


async def test_state_store_roundtrip(state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    await migrate(engine)
    await migrate(engine)  # idempotent: a second replica or restart migrates again
    store = StateStore(engine)
    try:
        await store.put("zendesk.cursor", "tickets", {"after": "abc"})
        await store.put_many("zendesk.ticket", {str(i): {"p": "high"} for i in range(1200)})
        await store.put("zendesk.cursor", "tickets", {"after": "def"})
        assert await store.get("zendesk.cursor", "tickets") == {"after": "def"}
        assert len(await store.get_all("zendesk.ticket")) == 1200
        await store.delete_many("zendesk.ticket", [str(i) for i in range(1000)])
        assert len(await store.get_all("zendesk.ticket")) == 200
        await store.replace_namespace("zendesk.ticket", {"x": 1})
        assert await store.get_all("zendesk.ticket") == {"x": 1}
        assert await store.get("nothing", "here") is None
    finally:
        await engine.dispose()
