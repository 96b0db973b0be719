"""Example strategies: ``market_maker.MarketMaker`` and ``tick_to_trade.TickToTradeProbe``."""
