namespace ModelParallel.Tests.Layers;

/// <summary>Tests that redirect <see cref="Console.Out"/> run alone, so that no other test writes into what they capture.</summary>
[CollectionDefinition(nameof(ConsoleCollection), DisableParallelization = true)]
public sealed class ConsoleCollection;
