# The dgbit document's "Python with Reconnection" example, verbatim but for the
# port, which the test passes on the command line.
import sys

PORT = sys.argv[1]

import asyncio
import websockets
import json
from typing import Callable

class EventClient:
    def __init__(self, url: str, handlers: dict[str, Callable] = None):
        self.url = url
        self.handlers = handlers or {}
        self.ws = None
        self.running = False

    async def connect(self):
        self.running = True
        while self.running:
            try:
                async with websockets.connect(self.url) as ws:
                    self.ws = ws
                    print("Connected")
                    await self._listen()
            except websockets.ConnectionClosed:
                print("Connection closed, reconnecting...")
                await asyncio.sleep(5)
            except Exception as e:
                print(f"Error: {e}, reconnecting...")
                await asyncio.sleep(5)

    async def _listen(self):
        async for message in self.ws:
            event = json.loads(message)
            handler = self.handlers.get(event['type'])
            if handler:
                await handler(event['payload'])

    async def stop(self):
        self.running = False
        if self.ws:
            await self.ws.close()

# Usage
async def on_trade_entered(payload):
    print(f"Trade entered: {payload}")

client = EventClient(
    f"ws://localhost:{PORT}/api/ws/events",
    handlers={
        'trade.entered': on_trade_entered,
    }
)
asyncio.run(client.connect())
