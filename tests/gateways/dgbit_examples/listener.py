# The dgbit document's "Python" client example, verbatim but for the port,
# which the test passes on the command line.
import sys

PORT = sys.argv[1]

import asyncio
import websockets
import json

async def event_listener():
    uri = f"ws://localhost:{PORT}/api/ws/events"
    async with websockets.connect(uri) as ws:
        print("Connected to event stream")
        async for message in ws:
            event = json.loads(message)
            event_type = event['type']
            payload = event['payload']
            print(f"Event: {event_type}")
            if event_type == 'job.completed':
                print(f" Job {payload['job_id']} completed")
                print(f" Win rate: {payload['result']['win_rate']:.1%}")
            elif event_type == 'trade.entered':
                print(f" Entered {payload['side']} {payload['symbol']}")
                print(f" Entry: {payload['entry_price']}")
            elif event_type == 'trade.exited':
                print(f" Exited {payload['symbol']}")
                print(f" PnL: {payload['pnl_pct']:.2%}")

asyncio.run(event_listener())
